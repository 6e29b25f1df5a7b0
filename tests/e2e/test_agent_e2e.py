"""The host agent as a real process: bootstrap, heartbeats, restarts."""

import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.root]


def test_bootstrap_registered_the_host_and_admin(stack):
    assert f"host '{stack.host}' registered (queue host.{stack.host})" in stack.bootstrap_output
    assert "password from BERTH_ADMIN_PASSWORD" in stack.bootstrap_output
    again = stack.manage("bootstrap", "--skip-checks", "--host-name", stack.host).stdout
    assert "exists" in again and "already registered" in again
    assert stack.sql("SELECT count(*) FROM hosts_host WHERE name = ?", stack.host) == [(1,)]
    assert stack.sql("SELECT queue FROM hosts_host WHERE name = ?", stack.host) == [
        (f"host.{stack.host}",)
    ]


def test_heartbeat_marks_the_host_up(stack):
    # The agent stamps the host up first and adds its report a moment later
    # (agent/control_loop.py): wait for both.
    row = stack.wait_until(
        lambda: (row := stack.host_row())["last_heartbeat"] and row["info"] and row,
        30,
        "a heartbeat with the host's report",
    )
    assert row["state"] == "up"
    assert row["info"]["kernel"]


def test_agent_restart_keeps_beating(stack):
    first = stack.wait_until(lambda: stack.host_row()["last_heartbeat"], 30, "a heartbeat")
    stack.kill_worker()
    stack.start_worker()
    stack.wait_until(
        lambda: stack.host_row()["last_heartbeat"] != first, 30, "a heartbeat from the new agent"
    )
    assert stack.host_row()["state"] == "up"


def test_agent_status_shows_the_host_up(stack):
    stack.wait_until(lambda: stack.host_row()["last_heartbeat"], 30, "a heartbeat")
    out = stack.manage("agent_status").stdout
    line = next(line for line in out.splitlines() if line.startswith(stack.host))
    assert f"host.{stack.host}" in line and " up " in line
