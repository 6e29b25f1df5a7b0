"""The real docker CLI and the docker Python SDK against a served Berth (DOCKER_HOST=tcp://...).

Only the docker client is used (no dockerd): the CLI reads the Berth token from a temporary
DOCKER_CONFIG's config.json HttpHeaders, as docs/docker-api.md tells users to do. The CLI talks
to Berth's Docker API listener (`manage.py serve_docker_api`), which hands ordinary calls to the
same Django application as the web server and upgrades attach and exec connections itself.
"""

import json
import os
import pty
import select
import shutil
import signal
import subprocess
import time
import urllib.request

import pytest
from dockerapi.frames import unframe

from tests.e2e.conftest import DEVELOPER

pytestmark = pytest.mark.skipif(shutil.which("docker") is None, reason="no docker CLI")


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
    # The list's command (from the spec keys the database extracts) and creation time.
    row = dock(
        "ps", "--filter", "name=dk-sleep", "--format", "{{.ID}}|{{.Command}}|{{.RunningFor}}"
    )
    short, command, running_for = row.stdout.strip().split("|")
    assert cid.startswith(short) and command.startswith('"sh -c') and "ago" in running_for
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


def test_run_rm_prints_and_leaves_nothing_and_run_d_wait_logs(dock, web):
    rm = dock("run", "--rm", "--name", "dk-rm", "busybox", "echo", "hi", timeout=90)
    assert rm.stdout == "hi\n"
    assert "dk-rm" not in dock("ps", "-a", "--format", "{{.Names}}").stdout.split()
    assert web.sql(
        "SELECT desired_state, observed_state FROM containers_container WHERE name = 'dk-rm'"
    ) == [("removed", "removed")]
    conflict = dock("run", "--rm", "--restart", "always", "busybox", "true", check=False)
    assert conflict.returncode != 0 and "restart" in conflict.stderr
    dock("run", "-d", "--name", "dk-exit", "busybox", "sh", "-c", "echo hi; exit 3")
    assert dock("wait", "dk-exit", timeout=120).stdout.strip() == "3"
    assert dock("logs", "dk-exit").stdout == "hi\n"
    dock("rm", "dk-exit")


def test_attached_run_streams_both_outputs_and_the_exit_code(dock, web):
    result = dock(
        "run", "--name", "dk-attached", "busybox", "sh", "-c", "echo out; echo err >&2; exit 5",
        check=False,
    )  # fmt: skip
    assert result.returncode == 5, result.stderr
    assert result.stdout == "out\n" and result.stderr == "err\n"
    # docker start -a: attached again to the stopped container, it runs and streams once more.
    again = dock("start", "-a", "dk-attached", check=False)
    assert again.returncode == 5 and again.stdout == "out\n" and again.stderr == "err\n"
    events = web.sql(
        "SELECT outcome, summary FROM audit_auditevent WHERE action = 'container.attach' "
        "AND object_repr = 'dk-attached' ORDER BY seq"
    )
    assert len(events) == 2 and all(outcome == "allowed" for outcome, _ in events)
    assert json.loads(events[0][1])["via"] == "docker-api"
    dock("rm", "dk-attached")


def test_logs_follow_streams_until_the_container_stops(dock, web):
    dock(
        "run", "-d", "--name", "dk-follow", "busybox", "sh", "-c",
        "for i in 1 2 3; do echo line$i; echo warn$i >&2; sleep 1; done",
    )  # fmt: skip
    followed = dock("logs", "-f", "dk-follow", timeout=60)
    assert followed.stdout == "line1\nline2\nline3\n"
    assert followed.stderr == "warn1\nwarn2\nwarn3\n"
    # The host reports the exit a moment after the log ends.
    assert dock("wait", "dk-follow", timeout=60).stdout.strip() == "0"
    dock("rm", "dk-follow")


def test_exec_without_a_tty_keeps_stdout_stderr_input_and_exit_code(dock, web):
    dock("run", "-d", "--name", "dk-exec", "busybox", "sleep", "1000")
    out = dock("exec", "dk-exec", "sh", "-c", "echo $((6*7)); echo warn >&2; exit 4", check=False)
    assert out.returncode == 4 and out.stdout == "42\n" and out.stderr == "warn\n"
    piped = subprocess.run(
        ["docker", "exec", "-i", "dk-exec", "sh", "-c", "tr a-z A-Z; echo done"],
        input="hello through stdin\n",
        env=dock.env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert piped.returncode == 0, piped.stderr
    assert piped.stdout == "HELLO THROUGH STDIN\ndone\n"
    stopped = dock("run", "-d", "--name", "dk-exec-stopped", "busybox", "true")
    dock("wait", "dk-exec-stopped")
    refused = dock("exec", "dk-exec-stopped", "true", check=False)
    assert refused.returncode != 0 and "is not running" in refused.stderr
    assert stopped.returncode == 0
    dock("rm", "-f", "dk-exec", "dk-exec-stopped")


PAUSE = 3.0  # seconds before typing into a session whose first output is not awaited


def _on_a_pty(dock, args, steps, timeout=60):
    """Run the docker CLI on a pseudo-terminal; `steps` are (text to wait for, bytes to type),
    the text None for "after PAUSE seconds". Returns (exit code, everything the CLI wrote)."""
    pid, fd = pty.fork()
    if pid == 0:
        os.execvpe("docker", ["docker", *args], dock.env)
    seen, everything = b"", b""
    deadline = time.monotonic() + timeout
    pending = list(steps)
    try:
        while time.monotonic() < deadline:
            while pending and (
                pending[0][0].encode() in seen
                if pending[0][0] is not None
                else time.monotonic() > deadline - timeout + PAUSE
            ):
                _, typed = pending.pop(0)
                seen = b""  # what comes next is matched afresh
                os.write(fd, typed)
            ready, _, _ = select.select([fd], [], [], 0.2)
            data = b""
            if ready:
                try:
                    data = os.read(fd, 65536)
                except OSError:  # EIO: the CLI exited and closed the terminal
                    data = None
            if data is None or (ready and not data):
                break
            seen += data
            everything += data
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                return os.waitstatus_to_exitcode(status), everything
        else:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            pytest.fail(f"docker {' '.join(args)} did not finish; it wrote {everything[-2000:]!r}")
    finally:
        os.close(fd)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status), everything


def test_run_it_and_attach_take_input_on_the_containers_tty(dock, web):
    # The CLI attaches before it starts the container: what the shell prints first is lost,
    # so the first line is typed after a pause, as a person would.
    code, seen = _on_a_pty(
        dock,
        ["run", "-it", "--name", "dk-tty", "busybox", "sh"],
        [(None, b"echo tty-$((40+2))\r"), ("tty-42", b"exit 7\r")],
    )
    assert code == 7 and b"tty-42" in seen, seen
    dock("run", "-dit", "--name", "dk-tty2", "busybox", "sh")
    code, seen = _on_a_pty(
        dock, ["attach", "dk-tty2"], [(None, b"echo back-$((1+1))\r"), ("back-2", b"exit 3\r")]
    )
    assert code == 3 and b"back-2" in seen, seen
    dock("rm", "-f", "dk-tty", "dk-tty2")


def test_exec_it_runs_a_shell_on_a_tty(dock, web):
    dock("run", "-d", "--name", "dk-exec-tty", "busybox", "sleep", "1000")
    code, seen = _on_a_pty(
        dock,
        ["exec", "-it", "dk-exec-tty", "sh"],
        [(None, b"echo is-$((3*3))\r"), ("is-9", b"exit 3\r")],
    )
    assert code == 3, seen
    assert b"is-9" in seen
    dock("rm", "-f", "dk-exec-tty")


def test_attach_to_another_teams_container_is_a_404(dock, web):
    web.api("POST", "/containers/?wait=60", {
        "team": "e2e", "host": web.host, "start": True,
        "spec": {"image": "busybox", "name": "dk-admins", "command": ["sleep", "1000"], "tty": True},
    })  # fmt: skip
    # The developer is in team e2e too: make the container another team's.
    web.manage("shell", "-c", (
        "from accounts.models import Team; from containers.models import Container; "
        "other, _ = Team.objects.get_or_create(name='e2e-other'); "
        "Container.objects.filter(name='dk-admins').update(team=other)"
    ))  # fmt: skip
    refused = dock("attach", "dk-admins", check=False, timeout=30)
    assert refused.returncode != 0 and "No such container: dk-admins" in refused.stderr
    # The CLI looks the container up first: that lookup is the refused, audited call.
    denied = web.sql(
        "SELECT COUNT(*) FROM audit_auditevent WHERE object_id = 'dk-admins' AND outcome = 'denied'"
    )[0][0]
    assert denied >= 1
    web.manage("shell", "-c", (
        "from accounts.models import Team; from containers.models import Container; "
        "Container.objects.filter(name='dk-admins').update(team=Team.objects.get(name='e2e'))"
    ))  # fmt: skip
    dock("rm", "-f", "dk-admins")


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
    # docker network connect/disconnect of the running container, at once.
    dock("network", "create", "dk-net2")
    dock("network", "connect", "--alias", "second", "dk-net2", "dk-user")
    assert "eth1" in dock("exec", "dk-user", "ip", "-o", "addr").stdout
    connected = json.loads(dock("inspect", "dk-user").stdout)[0]
    assert set(connected["NetworkSettings"]["Networks"]) == {"dk-net", "dk-net2"}
    again = dock("network", "connect", "dk-net2", "dk-user", check=False)
    assert again.returncode != 0 and "already connected" in again.stderr
    dock("network", "disconnect", "dk-net2", "dk-user")
    assert "eth1" not in dock("exec", "dk-user", "ip", "-o", "addr").stdout
    dock("rm", "-f", "dk-user")
    dock("network", "rm", "dk-net2")
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


def test_health_cmd_is_run_and_shown_by_ps_and_inspect(dock, web):
    dock(
        "run", "-d", "--name", "dk-health", "--health-cmd", "echo ok",
        "--health-interval", "1s", "--health-retries", "1", "busybox", "sleep", "1000",
    )  # fmt: skip

    def healthy():
        state = dock("inspect", "--format", "{{json .State.Health}}", "dk-health").stdout
        return json.loads(state) if '"healthy"' in state else None

    health = web.wait_until(healthy, 30, "docker inspect to show the container healthy")
    assert health["Log"][-1]["Output"] == "ok\n" and health["FailingStreak"] == 0
    assert "(healthy)" in dock("ps", "--filter", "name=dk-health", "--format", "{{.Status}}").stdout
    config = json.loads(
        dock("inspect", "--format", "{{json .Config.Healthcheck}}", "dk-health").stdout
    )
    assert config["Test"] == ["CMD-SHELL", "echo ok"] and config["Interval"] == 1_000_000_000
    dock("rm", "-f", "dk-health")
