"""docker-compose 1.29 (Debian's) and the docker CLI's detach keys against a served Berth.

One module-scoped stack and listener (tests/e2e/conftest.py `dock`): compose brings a stack of
three services up (a user network, a named volume, a published port, depends_on, environment),
`ps` and `logs` show it, `down -v` removes everything it made.
"""

import json
import shutil
import subprocess

import pytest

pytestmark = pytest.mark.skipif(
    shutil.which("docker") is None or shutil.which("docker-compose") is None,
    reason="no docker CLI or docker-compose",
)

COMPOSE = """\
version: "3.7"
services:
  db:
    image: busybox
    command: ["sh", "-c", "echo db-up $$ROLE; echo stored > /data/x; sleep 1000"]
    environment:
      ROLE: database
    volumes:
      - dbdata:/data
    networks: [back]
  app:
    image: busybox
    command: ["sh", "-c", "echo app-up $$DB_HOST; sleep 1000"]
    environment:
      DB_HOST: db
    depends_on: [db]
    networks: [back]
  web:
    image: busybox
    command: ["sh", "-c", "echo web-up; sleep 1000"]
    ports: ["{port}:80"]
    depends_on: [app]
    networks: [back]
networks:
  back: {{}}
volumes:
  dbdata: {{}}
"""


def _compose(dock, project_dir, *args, check=True, timeout=120):
    env = dict(dock.env, COMPOSE_PROJECT_NAME="dkstack", COMPOSE_INTERACTIVE_NO_CLI="1")
    result = subprocess.run(
        ["docker-compose", *args],
        cwd=project_dir,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if check and result.returncode != 0:
        pytest.fail(f"docker-compose {' '.join(args)}: {result.returncode}\n{result.stderr}")
    return result


def test_compose_up_ps_logs_down(dock, web, tmp_path):
    from tests.e2e.conftest import free_port

    (tmp_path / "docker-compose.yml").write_text(COMPOSE.format(port=free_port()))
    try:
        _compose(dock, tmp_path, "up", "-d")
        ps = _compose(dock, tmp_path, "ps").stdout
        for service in ("db", "app", "web"):
            assert f"dkstack_{service}_1" in ps, ps
        assert ps.count(" Up ") == 3 and "->80/tcp" in ps, ps
        logs = _compose(dock, tmp_path, "logs", "--no-color").stdout
        assert "db-up database" in logs and "app-up db" in logs and "web-up" in logs, logs
        # Every container carries compose's labels; the stack is one project.
        listed = dock(
            "ps", "--filter", "label=com.docker.compose.project=dkstack", "--format", "{{.Names}}"
        ).stdout.split()
        assert sorted(listed) == ["dkstack_app_1", "dkstack_db_1", "dkstack_web_1"], listed
        network = json.loads(dock("network", "inspect", "dkstack_back").stdout)[0]
        assert network["Labels"]["com.docker.compose.project"] == "dkstack"
    finally:
        # -t 1: the services' shells ignore SIGTERM, as they would under dockerd.
        down = _compose(dock, tmp_path, "down", "-v", "-t", "1", check=False)
    assert down.returncode == 0, down.stderr
    assert "dkstack" not in dock("ps", "-a", "--format", "{{.Names}}").stdout
    assert "dkstack_dbdata" not in dock("volume", "ls", "--format", "{{.Name}}").stdout
    assert "dkstack_back" not in dock("network", "ls", "--format", "{{.Name}}").stdout
