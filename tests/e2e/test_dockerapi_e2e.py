"""The real docker CLI and the docker Python SDK against a served Berth (DOCKER_HOST=tcp://...).

Only the docker client is used (no dockerd): the CLI reads the Berth token from a temporary
DOCKER_CONFIG's config.json HttpHeaders, as docs/docker-api.md tells users to do.
"""

import json
import os
import shutil
import subprocess
import time
import urllib.request

import pytest
from dockerapi.frames import unframe

DEVELOPER = "dev-docker"

pytestmark = pytest.mark.skipif(shutil.which("docker") is None, reason="no docker CLI")


@pytest.fixture(scope="module")
def dock(web, tmp_path_factory):
    """(run, env): run("ps") runs the docker CLI as a developer of team e2e against Berth."""
    code = (
        "from accounts.models import Membership, Team, User; "
        "from rbac.models import Role, RoleBinding; "
        "team = Team.objects.get(name='e2e'); "
        f"user = User.objects.create_user(username={DEVELOPER!r}, password='x-unused-1'); "
        "Membership.objects.create(team=team, user=user); "
        "RoleBinding.objects.create(user=user, role=Role.objects.get(name='developer'), "
        "scope_team=team)"
    )
    web.manage("shell", "-c", code)
    secret = web.manage("create_token", DEVELOPER, "--name", "docker", "--days", "1").stdout
    token = secret.strip().splitlines()[-1]
    config = tmp_path_factory.mktemp("docker-config")
    (config / "config.json").write_text(
        json.dumps({"HttpHeaders": {"Authorization": f"Bearer {token}"}})
    )
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(config),
        "DOCKER_HOST": f"tcp://127.0.0.1:{web.web_port}",
        "DOCKER_CONFIG": str(config),
    }

    def run(*args, check=True, timeout=60):
        result = subprocess.run(
            ["docker", *args], env=env, capture_output=True, text=True, timeout=timeout
        )
        if check and result.returncode != 0:
            pytest.fail(f"docker {' '.join(args)}: {result.returncode}\n{result.stderr}")
        return result

    run.env = env
    run.token = token
    return run


def test_version_negotiates_within_berths_range(dock):
    server = dock("version", "--format", "{{.Server.APIVersion}} {{.Server.Version}}").stdout
    assert server.split()[0] == "1.47" and "berth" in server
    info = json.loads(dock("info", "--format", "{{json .}}").stdout)
    assert info["OperatingSystem"].startswith("Berth")


def test_no_token_is_a_401_the_cli_shows(dock, tmp_path):
    env = dict(dock.env, DOCKER_CONFIG=str(tmp_path))
    result = subprocess.run(["docker", "ps"], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert "HttpHeaders" in result.stderr or "401" in result.stderr


def test_run_detached_ps_logs_stop_and_remove(dock, web):
    cid = dock(
        "run",
        "-d",
        "--name",
        "dk-sleep",
        "-e",
        "GREETING=hello",
        "busybox",
        "sh",
        "-c",
        'echo "$GREETING"; echo oops >&2; sleep 1000',
    ).stdout.strip()
    assert cid
    names = dock("ps", "--format", "{{.Names}} {{.Status}}").stdout
    assert "dk-sleep Up" in names
    # An ordinary Berth container: team, host, spec (with the developer's default limits).
    team, host, spec = web.sql(
        "SELECT t.name, h.name, c.spec FROM containers_container c "
        "JOIN accounts_team t ON t.id = c.team_id JOIN hosts_host h ON h.id = c.host_id "
        "WHERE c.name = 'dk-sleep'"
    )[0]
    assert (team, host) == ("e2e", web.host)
    assert json.loads(spec)["limits"]["memory"] == 268435456

    def logged():
        result = dock("logs", "dk-sleep")
        return result if "hello" in result.stdout and "oops" in result.stderr else None

    result = web.wait_until(logged, 30, "both streams in docker logs")
    assert "oops" not in result.stdout and "hello" not in result.stderr
    inspected = json.loads(dock("inspect", "dk-sleep").stdout)[0]
    assert inspected["Id"] == cid and inspected["State"]["Running"] is True
    assert "GREETING=hello" in inspected["Config"]["Env"]

    dock("stop", "-t", "1", "dk-sleep")
    status = dock("ps", "-a", "--filter", "name=dk-sleep", "--format", "{{.Status}}").stdout
    assert status.startswith("Exited")
    assert "dk-sleep" not in dock("ps", "--format", "{{.Names}}").stdout
    dock("rm", "-f", "dk-sleep")
    assert "dk-sleep" not in dock("ps", "-a", "--format", "{{.Names}}").stdout
    gone = dock("inspect", "dk-sleep", check=False)
    assert gone.returncode != 0 and "No such object: dk-sleep" in gone.stderr


def test_attached_run_is_a_clear_501_and_run_d_logs_wait_work(dock, web):
    rm = dock("run", "--rm", "busybox", "echo", "hi", check=False)
    assert rm.returncode != 0
    assert "Berth does not support AutoRemove (docker run --rm) yet" in rm.stderr
    attached = dock("run", "--name", "dk-attached", "busybox", "echo", "hi", check=False)
    assert attached.returncode != 0 and "501" in attached.stderr  # attach needs the hijack
    dock("rm", "-f", "dk-attached", check=False)

    dock("run", "-d", "--name", "dk-exit", "busybox", "sh", "-c", "echo hi; exit 3")
    assert dock("wait", "dk-exit", timeout=120).stdout.strip() == "3"
    assert dock("logs", "dk-exit").stdout == "hi\n"
    dock("rm", "dk-exit")


def test_volumes_and_networks(dock, web):
    assert dock("volume", "create", "dk-data").stdout.strip() == "dk-data"
    assert "dk-data" in dock("volume", "ls", "--format", "{{.Name}}").stdout.split()
    dock("network", "create", "dk-net")
    listed = dock("network", "ls", "--format", "{{.Name}}").stdout.split()
    assert {"bridge", "dk-net"} <= set(listed)
    assert web.sql("SELECT state FROM networks_network WHERE name = 'dk-net'") == [("ready",)]
    # A container on the user network with the named volume.
    dock(
        "run",
        "-d",
        "--name",
        "dk-user",
        "--network",
        "dk-net",
        "-v",
        "dk-data:/data",
        "busybox",
        "sh",
        "-c",
        "echo saved > /data/f; sleep 1000",
    )
    inspected = json.loads(dock("inspect", "dk-user").stdout)[0]
    assert inspected["HostConfig"]["NetworkMode"] == "dk-net"
    assert inspected["Mounts"][0]["Name"] == "dk-data"
    dock("rm", "-f", "dk-user")
    dock("network", "rm", "dk-net")
    dock("volume", "rm", "dk-data")
    assert "dk-net" not in dock("network", "ls", "--format", "{{.Name}}").stdout.split()
    assert "dk-data" not in dock("volume", "ls", "--format", "{{.Name}}").stdout.split()


def test_a_developer_is_refused_privileged_and_host_root_binds(dock, web):
    before = web.sql("SELECT COUNT(*) FROM containers_container")[0][0]
    privileged = dock("run", "-d", "--privileged", "busybox", "true", check=False)
    assert privileged.returncode != 0
    assert "Berth refused this request" in privileged.stderr
    assert "container.privileged" in privileged.stderr
    root = dock("run", "-d", "-v", "/:/host", "busybox", "true", check=False)
    assert root.returncode != 0 and "bind mount of host path /" in root.stderr
    assert web.sql("SELECT COUNT(*) FROM containers_container")[0][0] == before
    events = web.sql(
        "SELECT actor, reason, summary FROM audit_auditevent "
        "WHERE action = 'container.create' AND outcome = 'denied' ORDER BY seq"
    )
    assert len(events) == 2
    for actor, _, summary in events:
        summary = json.loads(summary)
        assert actor == DEVELOPER and summary["user_agent"].startswith("Docker-Client/")
        assert summary["via"] == "docker-api"
    assert "container.privileged" in events[0][1] and "host path /" in events[1][1]


def _http(dock, method, path, body=None):
    request = urllib.request.Request(
        dock.env["DOCKER_HOST"].replace("tcp://", "http://") + path,
        data=None if body is None else json.dumps(body).encode(),
        method=method,
        headers={"Authorization": f"Bearer {dock.token}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        return response.read()


def test_the_python_sdk(dock, monkeypatch):
    docker = pytest.importorskip("docker")
    monkeypatch.setenv("DOCKER_CONFIG", dock.env["DOCKER_CONFIG"])
    client = docker.DockerClient(base_url=dock.env["DOCKER_HOST"], version="auto", timeout=120)
    assert client.ping() is True
    container = client.containers.run(
        "busybox",
        ["sh", "-c", "echo sdk; sleep 1000"],
        detach=True,
        name="dk-sdk",
        labels={"suite": "sdk"},
        mem_limit="64m",
    )
    listed = client.containers.list(filters={"label": "suite=sdk"})
    assert [c.name for c in listed] == ["dk-sdk"]
    deadline = time.monotonic() + 30
    while b"sdk" not in container.logs() and time.monotonic() < deadline:
        time.sleep(0.3)
    assert container.logs() == b"sdk\n"
    # exec without the hijack: create + start over plain HTTP answers the multiplexed output
    # (the SDK's exec_run and `docker exec` want the HTTP upgrade: not yet, see the docs).
    created = _http(
        dock,
        "POST",
        f"/v1.47/containers/{container.id}/exec",
        {"Cmd": ["sh", "-c", "echo in; echo err >&2; exit 4"], "AttachStdout": True},
    )
    started = _http(dock, "POST", f"/v1.47/exec/{json.loads(created)['Id']}/start", {})
    assert [(s, p.strip()) for s, p in unframe(started)] == [(1, b"in\nerr")] or b"in" in started
    container.stop(timeout=1)
    container.reload()
    assert container.status == "exited"
    container.remove(force=True)
    with pytest.raises(docker.errors.APIError) as refused:
        client.containers.run("busybox", "true", detach=True, privileged=True)
    assert refused.value.response.status_code == 403
    volume = client.volumes.create("dk-sdk-vol")
    assert volume.name in [v.name for v in client.volumes.list()]
    volume.remove()
