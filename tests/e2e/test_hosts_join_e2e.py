"""Enrolment end to end (issue 9): an admin adds a host, `scripts/berth-agent --join URL TOKEN`
joins it from the "new machine" (its own host name, state root and prefix), the identity file
is written with mode 600, the Host row gets the agent's key, and the joined agent's first
heartbeat makes the host up. A second join with the same token is refused with the server's
message."""

import json
import os
import signal
import subprocess
from pathlib import Path

import pytest

from tests.e2e.conftest import REPO, _random, sweep, wait_until
from trust import keys

pytestmark = [pytest.mark.e2e, pytest.mark.root]


def test_join_a_second_host_and_its_first_heartbeat(web):
    name = "j" + _random(6)
    status, body = web.api("POST", "hosts/", {"name": name, "expires_in": 600})
    assert status == 201, body
    assert body["state"] == "pending"
    base = Path(f"/tmp/berth-e2e-join-{_random(8)}")
    base.mkdir(mode=0o755)
    prefix = "j" + _random(5)
    env = dict(
        web.env,
        BERTH_AGENT_HOST=name,
        BERTH_PREFIX=prefix,
        BERTH_ROOT=str(base / "root"),
        BERTH_RUN_ROOT=str(base / "run"),
        BERTH_AGENT_CONCURRENCY="1",
    )
    url = f"http://127.0.0.1:{web.web_port}/"
    agent = None
    try:
        joined = subprocess.run(
            [str(REPO / "scripts" / "berth-agent"), "--join", url, body["join_token"]],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert joined.returncode == 0, joined.stdout + joined.stderr
        assert f"joined as host '{name}'" in joined.stdout

        path = web.data_dir / "agents" / f"{name}.json"
        assert path.stat().st_mode & 0o777 == 0o600
        ident = json.loads(path.read_text())
        control = keys.decode_private((web.data_dir / "keys" / "control.key").read_text())
        assert ident["host"] == name
        assert ident["control_keys"] == [keys.encode_public(control.public_key())]
        host_public = keys.encode_public(keys.decode_private(ident["host_key"]).public_key())
        [(public_key, state)] = web.sql(
            "SELECT public_key, state FROM hosts_host WHERE name = ?", name
        )
        assert public_key == host_public and state == "down"

        again = subprocess.run(
            [str(REPO / "scripts" / "berth-agent"), "--join", url, body["join_token"]],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert again.returncode != 0
        assert "this join token was used already" in again.stderr
        assert json.loads(path.read_text()) == ident  # the refused join changed nothing

        # The joined agent starts, and its first heartbeat makes the host up.
        with open(base / "agent.log", "ab") as log:
            agent = subprocess.Popen(
                [str(REPO / "scripts" / "berth-agent")],
                cwd=REPO,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

        def up():
            if agent.poll() is not None:
                pytest.fail(f"agent exited:\n{(base / 'agent.log').read_text()[-3000:]}")
            rows = web.sql("SELECT state, info FROM hosts_host WHERE name = ?", name)
            # The agent stamps the host up first and adds its report (memory, CPUs) a moment
            # later (agent/control_loop.py), so wait for the report too.
            return (
                rows
                and rows[0][0] == "up"
                and "mem_available" in json.loads(rows[0][1])
                and rows[0]
            )

        state, info = wait_until(up, 60, f"host {name} to be up and report its memory")
        assert json.loads(info)["mem_available"] > 0
    finally:
        if agent is not None and agent.poll() is None:
            os.kill(agent.pid, signal.SIGTERM)
            try:
                agent.wait(30)
            except subprocess.TimeoutExpired:
                os.kill(agent.pid, signal.SIGKILL)
                agent.wait(10)
        sweep(prefix, base)
