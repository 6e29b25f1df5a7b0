"""docker-compose 1.29 (Debian's) and the docker CLI's detach keys against a served Berth.

One module-scoped stack and listener (tests/e2e/conftest.py `dock`): compose brings a stack of
three services up (a user network, a named volume, a published port, depends_on, environment),
`ps` and `logs` show it, `down -v` removes everything it made. Then the detach keys on a real
terminal: `docker run -it` and `docker attach` return on ctrl-p ctrl-q, the container runs on.
"""

import json
import os
import pty
import select
import shutil
import signal
import subprocess
import time

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


PAUSE = 2.0


def _detach_on_a_pty(dock, args, timeout=60):
    """Run the docker CLI on a pseudo-terminal, type a command once the shell answers, then
    ctrl-p and ctrl-q as a person does (two reads). Returns (exit code, everything written)."""
    pid, fd = pty.fork()
    if pid == 0:
        os.execvpe("docker", ["docker", *args], dock.env)
    # The shell's first prompt may come before the attach: type after a pause instead.
    steps = [(b"", b"echo up-$((6*7))\r"), (b"up-42", b"\x10"), (b"", b"\x11")]
    seen = everything = b""
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            if steps and steps[0][0] in seen:
                # The first pause lets the container start; the others keep the keys in separate
                # reads, as typed (the CLI's escape proxy matches one key a read).
                time.sleep(PAUSE if len(steps) == 3 else 0.3)
                os.write(fd, steps.pop(0)[1])
                seen = b""
            if select.select([fd], [], [], 0.2)[0]:
                try:
                    data = os.read(fd, 65536)
                except OSError:  # EIO: the CLI exited and closed the terminal
                    data = b""
                if not data:
                    break
                seen += data
                everything += data
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                return os.waitstatus_to_exitcode(status), everything
        while time.monotonic() < deadline:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                return os.waitstatus_to_exitcode(status), everything
            time.sleep(0.1)
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        pytest.fail(f"docker {' '.join(args)} did not return; it wrote {everything[-2000:]!r}")
    finally:
        os.close(fd)


def test_ctrl_p_ctrl_q_detaches_and_the_container_keeps_running(dock, web):
    code, seen = _detach_on_a_pty(dock, ["run", "-it", "--name", "dk-detach", "busybox", "sh"])
    assert code == 0 and b"up-42" in seen, seen  # docker run -it: detached, exit 0
    assert dock("inspect", "-f", "{{.State.Status}}", "dk-detach").stdout.strip() == "running"
    code, seen = _detach_on_a_pty(dock, ["attach", "dk-detach"])
    assert code == 1 and b"read escape sequence" in seen, seen  # as against dockerd
    assert dock("inspect", "-f", "{{.State.Status}}", "dk-detach").stdout.strip() == "running"
    dock("rm", "-f", "dk-detach")


def test_tls_with_a_client_certificate_per_user(dock, web, tmp_path):
    """serve_docker_api --tls-cert --tls-key --tls-ca: the CLI with DOCKER_TLS_VERIFY and the
    certificate issue_docker_cert made for the developer, no token; revoked, it is refused."""
    from tests.e2e.conftest import DEVELOPER, PY, free_port, serving

    certs = tmp_path / "certs"
    issued = web.manage(
        "issue_docker_cert", DEVELOPER, "--out", str(certs), "--days", "1", "--server"
    ).stdout
    serial = issued.split("client certificate ")[1].split()[0]
    tls_dir = web.data_dir / "docker-tls"
    port = free_port()
    args = [str(PY), "manage.py", "serve_docker_api", "--bind", f"127.0.0.1:{port}"]
    args += ["--tls-cert", str(tls_dir / "server-cert.pem")]
    args += ["--tls-key", str(tls_dir / "server-key.pem"), "--tls-ca", str(tls_dir / "ca.pem")]
    no_token = tmp_path / "config"
    no_token.mkdir()
    env = dict(
        dock.env,
        DOCKER_HOST=f"tcp://127.0.0.1:{port}",
        DOCKER_TLS_VERIFY="1",
        DOCKER_CERT_PATH=str(certs),
        DOCKER_CONFIG=str(no_token),
    )

    def docker(*argv):
        return subprocess.run(
            ["docker", *argv], env=env, capture_output=True, text=True, timeout=60
        )

    with serving(args, web.env, web.logs / "docker-api-tls.log", "the TLS listener"):
        # Hijacked and half-closed over TLS: the output comes after the CLI's close_notify.
        ran = docker("run", "--rm", "--name", "dk-tls", "busybox", "echo", "hello-tls")
        assert ran.returncode == 0 and ran.stdout.strip() == "hello-tls", ran.stderr
        owner = web.sql(
            "SELECT u.username FROM containers_container c JOIN accounts_user u "
            "ON u.id = c.created_by_id WHERE c.name = 'dk-tls'"
        )
        assert owner == [(DEVELOPER,)]
        # As `issue_docker_cert --revoke SERIAL` does (one process start less in the test).
        web.sql_write(
            "UPDATE dockertls_clientcertificate SET revoked_at = CURRENT_TIMESTAMP "
            "WHERE serial = ?",
            serial,
        )
        refused = docker("ps")
        assert refused.returncode != 0 and "revoked" in refused.stderr, refused.stderr
