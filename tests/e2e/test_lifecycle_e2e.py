"""Create, start, logs, stop and remove through the REST API with ?wait, on the real runtime."""

import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.root]

LABEL = "io.berth.container"


def runtime_copies(stack, container_id) -> list[dict]:
    """The runtime containers that belong to platform container `container_id`."""
    wanted = f"{stack.host}/{container_id}"
    return [
        s for s in stack.runtime().list() if (s["spec"].get("labels") or {}).get(LABEL) == wanted
    ]


def create(stack, name, command, *, start=True, wait=60):
    body = {
        "team": stack.team,
        "host": stack.host,
        "start": start,
        "spec": {"image": "busybox", "name": name, "command": command, "network": {"mode": "none"}},
    }
    return stack.api("POST", f"containers/?wait={wait}", body)


def test_create_start_logs_stop_remove(web):
    status, body = create(web, "hello", ["sh", "-c", "echo hello-from-e2e; exec sleep 1000"])
    assert status == 200, body
    assert body["operation"]["state"] == "succeeded", body
    cid = body["container"]["id"]

    _, row = web.api("GET", f"containers/{cid}/", expect=200)
    assert row["observed_state"] == "running"
    copies = runtime_copies(web, cid)
    assert len(copies) == 1 and copies[0]["status"] == "running"
    assert row["runtime_id"] == copies[0]["id"]

    def logged():
        _, out = web.api("GET", f"containers/{cid}/logs/", expect=200)
        return any("hello-from-e2e" in line[2] for line in out["lines"])

    web.wait_until(logged, 15, "the container's output in its logs")

    status, body = web.api("POST", f"containers/{cid}/stop/?wait=60", {"timeout": 1})
    assert status == 200 and body["operation"]["state"] == "succeeded", body
    _, row = web.api("GET", f"containers/{cid}/", expect=200)
    assert row["observed_state"] == "stopped" and row["exit_code"] is not None
    assert runtime_copies(web, cid)[0]["status"] == "stopped"

    status, body = web.api("DELETE", f"containers/{cid}/?wait=60")
    assert status == 200 and body["operation"]["state"] == "succeeded", body
    # A stopped container's remove is answered once its row is removed; the host deletes it
    # right after (agent.remove_container, issue 19).
    web.wait_until(lambda: runtime_copies(web, cid) == [], 15, "the host's deletion")


def test_exit_code_reaches_the_database(web):
    status, body = create(web, "quick", ["sh", "-c", "exit 7"])
    assert status == 200 and body["operation"]["state"] == "succeeded", body
    cid = body["container"]["id"]

    def exited():
        _, row = web.api("GET", f"containers/{cid}/", expect=200)
        return row["observed_state"] == "stopped" and row["exit_code"] == 7

    # The agent's reconciliation (every 15 s) notices the exit without any request.
    web.wait_until(exited, 45, "the exit code 7 in the container's row")
    web.api("DELETE", f"containers/{cid}/?wait=60", expect=200)


def test_a_name_that_starts_the_ids_of_two_containers_is_still_created(web):
    """A name made of hex digits that starts several runtime ids (the runtime resolves names
    before id prefixes) is no container's: the create makes it (the agent's lookup of its name
    answered "multiple containers match the id prefix" once, seen at 1,000 containers)."""
    rt = web.runtime()
    seen: dict[str, str] = {}
    prefix = None
    for _ in range(200):  # two of 256 two-digit prefixes meet within about 20 containers
        made = rt.create({"image": "busybox", "command": ["true"], "network": {"mode": "none"}})
        head = made["id"][:2]
        if head in seen:
            prefix = head
            break
        seen[head] = made["id"]
    assert prefix, "no two runtime ids shared their first two digits"
    status, body = create(web, prefix, ["sleep", "1000"])
    assert status == 200 and body["operation"]["state"] == "succeeded", body
    cid = body["container"]["id"]
    assert [c["name"] for c in runtime_copies(web, cid)] == [prefix]
    web.api("DELETE", f"containers/{cid}/?wait=60&force=true", expect=200)
    web.wait_until(lambda: runtime_copies(web, cid) == [], 15, "the host's deletion")


def test_bad_request_leaves_nothing(web):
    status, body = web.api(
        "POST",
        "containers/?wait=5",
        {"team": web.team, "host": web.host, "spec": {"image": "busybox", "bogus": 1}},
    )
    assert status == 400, body
    assert web.sql("SELECT count(*) FROM containers_container WHERE spec LIKE '%bogus%'") == [(0,)]


def test_ghost_is_marked_and_recreated(web):
    status, body = create(web, "ghosty", ["sleep", "1000"])
    assert status == 200 and body["operation"]["state"] == "succeeded", body
    cid = body["container"]["id"]
    old = runtime_copies(web, cid)[0]["id"]
    # The host loses the container behind the platform's back (as after `rm -rf` or a reboot).
    web.runtime().delete(old, force=True)

    def repaired():
        copies = runtime_copies(web, cid)
        return copies and copies[0]["status"] == "running" and copies[0]["id"] != old

    web.wait_until(repaired, 45, "the reconciler to re-create the lost container")

    def recorded():
        # The agent writes the row just after the runtime reports the new container running.
        _, row = web.api("GET", f"containers/{cid}/", expect=200)
        return row["observed_state"] == "running" and row["runtime_id"] != old

    web.wait_until(recorded, 10, "the agent to record the re-created container")
    # The repair is on record: a container.start operation the reconciler made, succeeded.
    assert web.sql(
        "SELECT state FROM operations_operation WHERE target_id = ? AND kind = 'container.start'",
        str(cid),
    ) == [("succeeded",)]
    web.api("DELETE", f"containers/{cid}/?wait=60&force=true", expect=200)


def test_oom_kill_reaches_the_database(web):
    limit = 16 * 1024 * 1024
    body = {
        "team": web.team,
        "host": web.host,
        "start": True,
        "spec": {
            "image": "busybox",
            "name": "hog",
            # dd allocates its 64 MiB block at once: over the limit before it reads a byte.
            "command": ["dd", "if=/dev/zero", "of=/dev/null", "bs=64M", "count=1"],
            "limits": {"memory": limit, "memory_swap": limit},
            "network": {"mode": "none"},
        },
    }
    status, out = web.api("POST", "containers/?wait=60", body)
    assert status == 200 and out["operation"]["state"] == "succeeded", out
    cid = out["container"]["id"]

    def killed():
        _, row = web.api("GET", f"containers/{cid}/", expect=200)
        return row["observed_state"] == "stopped" and row

    row = web.wait_until(killed, 45, "the OOM kill in the container's row")
    assert row["exit_code"] == 137
    assert row["error"] == "OOM killed"
    web.api("DELETE", f"containers/{cid}/?wait=60", expect=200)


def test_health_check_goes_unhealthy_then_healthy_and_is_shown(web):
    body = {
        "team": web.team,
        "host": web.host,
        "start": True,
        "spec": {
            "image": "busybox",
            "name": "health",
            "command": ["sleep", "1000"],
            "network": {"mode": "none"},
            "healthcheck": {
                "test": ["CMD-SHELL", "test -f /tmp/ok && echo fine"],
                "interval": 1,
                "timeout": 2,
                "retries": 2,
            },
        },
    }
    status, out = web.api("POST", "containers/?wait=60", body)
    assert status == 200, out
    cid = out["container"]["id"]

    def health_is(wanted):
        def check():
            _, row = web.api("GET", f"containers/{cid}/", expect=200)
            health = row["health"]
            return health if health and health["status"] == wanted else None

        return check

    sick = web.wait_until(health_is("unhealthy"), 30, "the failing check to make it unhealthy")
    assert sick["failing_streak"] >= 2 and sick["log"][-1]["exit_code"] == 1
    web.api("POST", f"containers/{cid}/exec/", {"command": ["touch", "/tmp/ok"]}, expect=200)
    well = web.wait_until(health_is("healthy"), 30, "the passing check to make it healthy")
    assert well["failing_streak"] == 0 and well["log"][-1]["output"] == "fine\n"
    web.api("DELETE", f"containers/{cid}/?force=true&wait=60", expect=200)


def test_a_start_during_a_stops_grace_runs_it_again(web):
    """busybox sleep as PID 1 ignores SIGTERM: the stop is parked until the shim's kill at its
    deadline. A start asked meanwhile comes after the stop (a new run), and the stop's kill
    does not end it: the row and the host agree on running (seen in the faults e2e test)."""
    status, body = create(web, "graced", ["sleep", "1000"])
    assert status == 200 and body["operation"]["state"] == "succeeded", body
    cid = body["container"]["id"]
    old = runtime_copies(web, cid)[0]["pid"]
    status, body = web.api("POST", f"containers/{cid}/stop/", {"timeout": 2})
    assert status == 202, body
    stop_op = body["operation"]["id"]

    def parked():
        _, op = web.api("GET", f"operations/{stop_op}/", expect=200)
        return op["state"] == "running" and (op.get("result") or {}).get("waiting") == "exit"

    web.wait_until(parked, 30, "the stop to be parked")
    status, body = web.api("POST", f"containers/{cid}/start/?wait=60", {})
    assert status == 200 and body["operation"]["state"] == "succeeded", body
    [copy] = runtime_copies(web, cid)
    assert copy["status"] == "running" and copy["pid"] not in (None, old), copy

    def stop_done():
        _, op = web.api("GET", f"operations/{stop_op}/", expect=200)
        return op["state"] not in ("pending", "running") and op

    op = web.wait_until(stop_done, 30, "the stop's end")
    assert op["state"] == "succeeded", op
    _, row = web.api("GET", f"containers/{cid}/", expect=200)
    assert row["desired_state"] == row["observed_state"] == "running", row
    assert runtime_copies(web, cid)[0]["pid"] == copy["pid"]
    web.api("DELETE", f"containers/{cid}/?wait=60&force=true", expect=200)
