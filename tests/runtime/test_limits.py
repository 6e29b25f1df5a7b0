"""Resource limits are in force from the first instruction: memory, pids, CPU."""

import pytest
from rt_helpers import wait_log

pytestmark = pytest.mark.root


def test_memory_hog_is_oom_killed(rt, base_spec):
    # /dev/zero has no newline: tail must keep all 200 MB as one line, against a 32 MB limit.
    base_spec.update(
        command=["sh", "-c", "head -c 200m /dev/zero | tail -n 1 >/dev/null"],
        limits={"memory": "32m"},
    )
    st = rt.run(base_spec)
    assert rt.wait(st["id"]) != 0
    st = rt.state(st["id"])
    assert st["oom_killed"] is True


def test_fork_bomb_stops_at_pids_limit(rt, base_spec):
    base_spec.update(
        # The inner shell gives up when fork fails; `exec` keeps PID 1 alive without a fork.
        command=[
            "sh",
            "-c",
            "sh -c 'for i in $(seq 60); do sleep 100 & done'; echo spawned; exec sleep 1000",
        ],
        limits={"pids": 20},
    )
    st = rt.run(base_spec)
    wait_log(rt, st["id"], b"spawned\n")
    text = "".join(b.decode() for _, _, b in rt.logs(st["id"]))
    assert "can't fork" in text or "Resource temporarily unavailable" in text
    stats = rt.stats(st["id"])
    assert stats["pids_limit"] == 20
    assert 15 <= stats["pids_current"] <= 20  # the inner shell itself has exited


def test_cpu_quota_and_memory_limit_visible(rt, base_spec):
    base_spec["limits"] = {"cpu_quota": 50000, "cpu_period": 100000, "memory": "64m"}
    st = rt.run(base_spec)
    stats = rt.stats(st["id"])
    assert stats["memory_limit"] == 64 * 1024 * 1024
    cpu_dir = next(
        p for p in rt.cgroups.procs_files(st["id"]) if "cpu" in p.split("/")[-4] or "cpu" in p
    )
    import os

    quota_file = os.path.join(os.path.dirname(cpu_dir), "cpu.cfs_quota_us")
    if not os.path.exists(quota_file):
        quota_file = os.path.join(os.path.dirname(cpu_dir), "cpu.max")
    with open(quota_file) as f:
        assert f.read().split()[0] == "50000"
