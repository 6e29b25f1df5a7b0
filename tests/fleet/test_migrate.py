"""Live migration (issue 11): a running container moves to the other host, memory and all."""

import os
import select
import threading
import time

import pytest

from tests.criu_support import criu_problem
from tests.fleet.test_two_hosts import fetch, refused

_PROBLEM = criu_problem()
pytestmark = [
    pytest.mark.e2e,
    pytest.mark.root,
    # Live migration is CRIU underneath: Debian 12's CRIU 3.17 cannot run on 6.x kernels.
    pytest.mark.skipif(bool(_PROBLEM), reason=_PROBLEM or "criu works"),
]

LABEL = "io.berth.container"
LOOP = "i=0; while true; do i=$((i+1)); echo $i; sleep 0.1; done"


def mine(host, container_id) -> list[dict]:
    wanted = f"{host.name}/{container_id}"
    return [s for s in host.containers() if (s["spec"].get("labels") or {}).get(LABEL) == wanted]


def numbers(host, runtime_id) -> list[int]:
    rt = host.runtime()
    return [int(b) for _, _, b in rt.logs(runtime_id) if b.strip().isdigit()]


def counter(fleet, host, name, command=LOOP, network=None, userns="host"):
    body = {
        "team": fleet.team,
        "host": host.name,
        "spec": {
            "image": "busybox",
            "name": name,
            "command": ["sh", "-c", command],
            "network": network or {"mode": "none"},
        },
    }
    if userns == "host":  # else the default: a user namespace of its own (issue 14)
        body["spec"]["namespaces"] = {"user": "host"}
    status, out = fleet.api("POST", "containers/?wait=60", body)
    assert status == 200 and out["container"]["observed_state"] == "running", out
    return out["container"]


def uid_map(host, runtime_id) -> tuple[int, ...]:
    """The uid_map of the container's init (inside, host, count)."""
    with open(f"/proc/{host.runtime().state(runtime_id)['pid']}/uid_map") as f:
        return tuple(int(v) for v in f.read().split())


def test_counting_loop_continues_after_migration(fleet):
    a, b = fleet.hosts[:2]
    row = counter(fleet, a, "mig-count", userns="private")  # the default container
    fleet.wait_until(lambda: len(numbers(a, row["runtime_id"])) > 5, 20, "counting on a")
    mapped = uid_map(a, row["runtime_id"])
    assert mapped[0] == 0 and mapped[1] > 0  # root inside is not root on the host
    status, out = fleet.api(
        "POST", f"containers/{row['id']}/migrate/", {"host": b.name}, timeout=300
    )
    assert status == 200, out
    assert out["id"] == row["id"]
    [copy] = mine(b, row["id"])
    assert mine(a, row["id"]) == []
    time.sleep(0.5)
    got = numbers(b, copy["id"])
    assert got and got[0] > 5  # continued, not started again from 1
    # The team's range on the target is the one it had on the source.
    info = b.runtime().store.read_record(copy["id"])["userns"]
    assert uid_map(b, copy["id"]) == mapped == (0, info["first"], info["count"])
    # The target's agent reports it (a source agent's observation in flight may come first).
    fleet.wait_until(
        lambda: (
            fleet.api("GET", f"containers/{row['id']}/", expect=200)[1]["observed_state"]
            == "running"
        ),
        10,
        "the row to show the migrated container running",
    )
    events = fleet.sql("SELECT outcome FROM audit_auditevent WHERE action = 'container.migrate'")
    assert ("allowed",) in events
    fleet.api("DELETE", f"containers/{row['id']}/?wait=60&force=1", expect=200)


def _page(address, port):
    try:
        return fetch(address, port).strip()
    except OSError:
        return None


def test_httpd_answers_on_the_target_hosts_port_after_migration(fleet):
    a, b = fleet.hosts[:2]
    port = 20000 + int.from_bytes(os.urandom(2)) % 20000
    serve = "mkdir -p /www && echo kept-state > /www/index.html && exec httpd -f -p 80 -h /www"
    net = {"ports": [{"container_port": 80, "host_port": port}]}
    row = counter(fleet, a, "mig-web", serve, net)
    assert fleet.wait_until(lambda: _page(a.address, port), 20, "httpd on a") == "kept-state"
    status, out = fleet.api(
        "POST", f"containers/{row['id']}/migrate/", {"host": b.name}, timeout=300
    )
    assert status == 200, out
    [copy] = mine(b, row["id"])
    # The same server process (not started again), answering on B's address, not A's.
    assert fleet.wait_until(lambda: _page(b.address, port), 20, "httpd on b") == "kept-state"
    assert refused(a.address, port)
    assert mine(a, row["id"]) == []
    [(summary,)] = fleet.sql(
        "SELECT summary FROM audit_auditevent WHERE action = 'container.migrate' "
        "AND summary LIKE '%mig-web%moved%'"
    )
    assert "pre-copy" in summary
    fleet.api("DELETE", f"containers/{row['id']}/?wait=60&force=1", expect=200)


def test_postcopy_migration_runs_on_the_target_then_its_memory_follows(fleet):
    a, b = fleet.hosts[:2]
    # Post-copy needs userfaultfd in the restored tasks: the host's user namespace here.
    row = counter(fleet, a, "mig-post")
    fleet.wait_until(lambda: len(numbers(a, row["runtime_id"])) > 5, 20, "counting on a")
    url = f"containers/{row['id']}/migrate/"
    status, out = fleet.api("POST", url, {"host": b.name, "mode": "lazy"})
    assert status == 400 and "mode" in str(out), out
    status, out = fleet.api("POST", url, {"host": b.name, "mode": "postcopy"}, timeout=300)
    assert status == 200, out
    [copy] = mine(b, row["id"])
    assert mine(a, row["id"]) == []
    got = fleet.wait_until(lambda: numbers(b, copy["id"])[1:] and numbers(b, copy["id"]), 10, "b")
    assert got[0] > 5 and got == sorted(got)  # continued, not started again from 1
    [(summary,)] = fleet.sql(
        "SELECT summary FROM audit_auditevent WHERE action = 'container.migrate' "
        "AND summary LIKE '%mig-post%moved%'"
    )
    assert "post-copy" in summary and "pages_ms" in summary
    fleet.api("DELETE", f"containers/{row['id']}/?wait=60&force=1", expect=200)
    # The default container (a user namespace of its own): refused with the reason, untouched.
    own = counter(fleet, a, "mig-post-u", userns="private")
    url = f"containers/{own['id']}/migrate/"
    status, out = fleet.api("POST", url, {"host": b.name, "mode": "postcopy"}, timeout=300)
    assert status == 409 and "userfaultfd" in out["error"]["message"], out
    [still] = mine(a, own["id"])
    assert still["status"] == "running" and still["id"] == own["runtime_id"]
    assert mine(b, own["id"]) == []
    fleet.api("DELETE", f"containers/{own['id']}/?wait=60&force=1", expect=200)


def test_migration_to_a_down_host_is_refused_up_front(fleet):
    a, b = fleet.hosts[:2]
    row = counter(fleet, a, "mig-down")
    fleet.kill_agent(b)
    try:
        fleet.wait_until(lambda: fleet.host_state(b) == "down", 15, f"{b.name} to be down")
        status, out = fleet.api("POST", f"containers/{row['id']}/migrate/", {"host": b.name})
        assert status == 409 and "is down" in out["error"]["message"], out
    finally:
        fleet.start_agent(b)
    [still] = mine(a, row["id"])
    assert still["status"] == "running" and still["id"] == row["runtime_id"]  # never touched
    fleet.api("DELETE", f"containers/{row['id']}/?wait=60&force=1", expect=200)


def _wait_fifo(path, timeout: float, answer: dict) -> str:
    """What a process paused by BERTH_TEST_PAUSE_AT writes on the FIFO (its step)."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if "got" in answer:
                raise AssertionError(f"the migration ended without pausing: {answer['got']}")
            ready, _, _ = select.select([fd], [], [], 0.5)
            data = os.read(fd, 100) if ready else b""
            if data:
                return data.decode().strip()
            time.sleep(0.1)  # no writer yet: a FIFO reads as empty
        raise AssertionError(f"nothing paused at {path} within {timeout} s")
    finally:
        os.close(fd)


def test_target_killed_mid_migration_leaves_the_source_running(fleet, mode="precopy"):
    # mode="postcopy" passes too (step postcopy-final); left out of the suite for its time:
    # tests/runtime/test_criu_precopy.py has a post-copy target vanish at that step.
    a, b = fleet.hosts[:2]
    userns = "private" if mode == "precopy" else "host"  # resumed in its own range
    row = counter(fleet, a, f"mig-fail-{mode}", userns=userns)
    mapped = uid_map(a, row["runtime_id"])
    fleet.wait_until(lambda: len(numbers(a, row["runtime_id"])) > 5, 20, "counting on a")
    fifo = fleet.base / f"pause-{mode}.fifo"
    os.mkfifo(fifo)
    step = f"{mode}-final"  # the target holds all of it but (post-copy) the memory
    pause = {"BERTH_TEST_PAUSE_AT": step, "BERTH_TEST_PAUSE_FIFO": str(fifo)}
    fleet.kill_agent(b)
    b.env.update(pause)
    answer = {}
    try:
        fleet.start_agent(b)
        call = threading.Thread(
            target=lambda: answer.update(
                got=fleet.api(
                    "POST",
                    f"containers/{row['id']}/migrate/",
                    {"host": b.name, "mode": mode},
                    timeout=300,
                )
            )
        )
        call.start()
        # The target holds the final checkpoint (the source is frozen): it dies there.
        assert _wait_fifo(fifo, 120, answer) == step
        last = numbers(a, row["runtime_id"])[-1]
        fleet.kill_agent(b)
        call.join(240)
    finally:
        for key in pause:
            b.env.pop(key, None)
        fleet.start_agent(b)
    status, out = answer["got"]
    assert status == 409, out
    [still] = mine(a, row["id"])
    assert still["status"] == "running"  # resumed from its checkpoint, where it was
    got = numbers(a, still["id"])
    assert last + 1 in got and got.count(1) == 1  # went on from `last`, never restarted
    assert uid_map(a, still["id"]) == mapped
    assert mine(b, row["id"]) == []
    fleet.api("DELETE", f"containers/{row['id']}/?wait=60&force=1", expect=200)
