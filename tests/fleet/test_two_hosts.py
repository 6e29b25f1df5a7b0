"""Two hosts, one control plane (issue 9): containers land on the host they were asked for, a
published port answers on its own host's address only, and a host whose agent dies goes down
with its containers `unknown` (still running, not lost, not duplicated) until its agent returns.
"""

import os
import socket
import urllib.request

import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.root]

LABEL = "io.berth.container"
BUSY = ["sh", "-c", "exec sleep 100000"]


def create(fleet, host, name, command, network=None):
    """POST /containers/ on `host` and wait for it to run; returns the container's row."""
    body = {
        "team": fleet.team,
        "host": host.name,
        "spec": {
            "image": "busybox",
            "name": name,
            "command": command,
            "network": network or {"mode": "none"},
        },
    }
    status, out = fleet.api("POST", "containers/?wait=60", body)
    assert status == 200, out
    assert out["operation"]["state"] == "succeeded", str(out["operation"])
    return out["container"]


def copies(host, container_id) -> list[dict]:
    """The runtime containers of `host` that belong to platform container `container_id`."""
    wanted = f"{host.name}/{container_id}"
    return [s for s in host.containers() if (s["spec"].get("labels") or {}).get(LABEL) == wanted]


def rows(fleet, host) -> list[dict]:
    """The API's containers of `host` (every page)."""
    _, out = fleet.api("GET", f"containers/?host={host.name}&page_size=200", expect=200)
    return out["results"] if isinstance(out, dict) else out


def fetch(address, port) -> str:
    with urllib.request.urlopen(f"http://{address}:{port}/", timeout=5) as response:
        return response.read().decode()


def refused(address, port) -> bool:
    try:
        with socket.create_connection((address, port), timeout=3):
            return False
    except ConnectionRefusedError:
        return True


def test_each_host_runs_the_containers_asked_of_it(fleet):
    a, b = fleet.hosts
    on_a = create(fleet, a, "sleeper-a", BUSY)
    on_b = create(fleet, b, "sleeper-b", BUSY)
    assert (on_a["observed_state"], on_b["observed_state"]) == ("running", "running")

    [copy_a] = copies(a, on_a["id"])
    [copy_b] = copies(b, on_b["id"])
    assert copy_a["id"] == on_a["runtime_id"] and copy_b["id"] == on_b["runtime_id"]
    assert not copies(a, on_b["id"]) and not copies(b, on_a["id"])
    assert {s["id"] for s in a.containers()}.isdisjoint(s["id"] for s in b.containers())
    assert fleet.host_state(a) == fleet.host_state(b) == "up"


def test_a_published_port_answers_on_its_own_host_only(fleet):
    a, b = fleet.hosts
    port = 20000 + int.from_bytes(os.urandom(2)) % 20000
    page = f"served-by-{b.name}"
    command = [
        "sh",
        "-c",
        f"mkdir -p /www && echo {page} > /www/index.html && exec httpd -f -p 80 -h /www",
    ]
    web = create(fleet, b, "web-b", command, {"ports": [{"container_port": 80, "host_port": port}]})
    assert copies(b, web["id"])[0]["network"]["ports"][0]["host_port"] == port

    # From the root namespace, like a client on the network: B's address, and only B's.
    assert fleet.wait_until(lambda: _answer(b.address, port), 20, "B's port") == page
    assert refused(a.address, port)


def _answer(address, port):
    try:
        return fetch(address, port).strip()
    except OSError:
        return None


def test_a_dead_agent_makes_its_host_down_and_its_containers_unknown_until_it_returns(fleet):
    a, b = fleet.hosts
    extra = create(fleet, b, "survivor-b", BUSY)
    before_b = {r["id"]: r for r in rows(fleet, b) if r["observed_state"] != "removed"}
    before_a = {r["id"]: r for r in rows(fleet, a) if r["observed_state"] != "removed"}
    assert extra["id"] in before_b
    assert all(r["observed_state"] == "running" for r in before_b.values())
    runtime_b = {s["id"]: s["pid"] for s in b.containers()}
    assert runtime_b == {r["runtime_id"]: r["pid"] for r in before_b.values()}
    a_agent = a.agent.pid

    fleet.kill_agent(b)
    try:
        # Another agent's heartbeat marks B down after three silent intervals.
        fleet.wait_until(lambda: fleet.host_state(b) == "down", 30, "host B to be down")
        assert fleet.host_state(a) == "up" and a.agent.poll() is None and a.agent.pid == a_agent

        now_b = {r["id"]: r for r in rows(fleet, b) if r["observed_state"] != "removed"}
        assert set(now_b) == set(before_b)  # not lost
        assert {r["observed_state"] for r in now_b.values()} == {"unknown"}
        for cid, row in now_b.items():
            assert row["desired_state"] == before_b[cid]["desired_state"]
            assert row["runtime_id"] == before_b[cid]["runtime_id"]
        # The containers outlive their agent: same processes, still running on B.
        assert {s["id"]: s["pid"] for s in b.containers()} == runtime_b
        for pid in runtime_b.values():
            os.kill(pid, 0)
        # A's containers are A's business: untouched.
        now_a = {r["id"]: r["observed_state"] for r in rows(fleet, a)}
        assert now_a == {cid: r["observed_state"] for cid, r in before_a.items()}
        _, counts = fleet.api("GET", f"containers/?host={b.name}&state=unknown", expect=200)
        assert counts["count"] == len(before_b)
    finally:
        fleet.start_agent(b)

    def back():
        now = {r["id"]: r for r in rows(fleet, b) if r["observed_state"] != "removed"}
        return all(r["observed_state"] == "running" for r in now.values()) and now

    after_b = fleet.wait_until(back, 30, "B's containers to be running again")
    assert set(after_b) == set(before_b)  # one row each, none new
    for cid, row in after_b.items():
        assert (row["runtime_id"], row["pid"]) == (
            before_b[cid]["runtime_id"],
            before_b[cid]["pid"],
        )
    # Not duplicated: the host runs exactly the containers it ran, the same processes.
    assert {s["id"]: s["pid"] for s in b.containers()} == runtime_b
    assert fleet.host_state(b) == "up"
    [(count,)] = fleet.sql(
        "SELECT COUNT(*) FROM containers_container c JOIN hosts_host h ON c.host_id = h.id "
        "WHERE h.name = ? AND c.observed_state != 'removed'",
        b.name,
    )
    assert count == len(before_b)
