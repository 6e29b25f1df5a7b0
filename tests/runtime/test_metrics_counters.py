"""The heartbeat's metrics report reads each listed container's counters without observing it
again (issue 19: rt.stats() per container was two thirds of a report at 1,000 containers)."""

from agent import metrics_report


def test_counters_of_a_listed_container_are_what_stats_reads(rt, base_spec):
    spec = dict(base_spec, name="counters", limits={"memory": 32 * 1024 * 1024})
    cid = rt.run(spec)["id"]
    state = next(s for s in rt.list() if s["id"] == cid)
    quick, full = metrics_report.counters(rt, state), rt.stats(cid)
    assert set(quick) | {"id", "read_at"} == set(full)
    assert quick["memory_limit"] == full["memory_limit"] == 32 * 1024 * 1024
    assert quick["pids_current"] == full["pids_current"] >= 1
    assert quick["networks"] == full["networks"]  # network none: only lo, never reported
    assert metrics_report.sample(quick).keys() == metrics_report.sample(full).keys()


def test_a_bridged_container_reports_its_interface(rt, base_spec):
    # Only `--network none` skips the namespace's counters (they would hold nothing but lo).
    spec = dict(base_spec, name="counters-bridged", network={"mode": "bridge"})
    cid = rt.run(spec)["id"]
    state = next(s for s in rt.list() if s["id"] == cid)
    quick = metrics_report.counters(rt, state)
    assert set(quick["networks"]) == {"eth0"} == set(rt.stats(cid)["networks"])
