"""Logs: stdout and stderr apart, tail, since, timestamps, follow; a silent reader never blocks."""

import time

import pytest
from rt_helpers import wait_log

from runtime.errors import InvalidSpec

pytestmark = pytest.mark.root


def test_streams_tail_and_since(rt, base_spec):
    base_spec["command"] = ["sh", "-c", "for i in 1 2 3 4 5; do echo out$i; echo err$i >&2; done"]
    st = rt.run(base_spec)
    rt.wait(st["id"])
    entries = list(rt.logs(st["id"]))
    assert [b for s, _, b in entries if s == "stdout"] == [
        f"out{i}\n".encode() for i in range(1, 6)
    ]
    assert [b for s, _, b in entries if s == "stderr"] == [
        f"err{i}\n".encode() for i in range(1, 6)
    ]
    assert all(ts.endswith("Z") and "T" in ts for _, ts, _ in entries)
    assert len(list(rt.logs(st["id"], tail=3))) == 3
    assert list(rt.logs(st["id"], tail=0)) == []
    assert list(rt.logs(st["id"], since=time.time() + 60)) == []
    assert len(list(rt.logs(st["id"], since=entries[0][1]))) == 10


def test_follow_until_exit(rt, base_spec):
    base_spec["command"] = ["sh", "-c", "echo first; sleep 0.5; echo second"]
    st = rt.run(base_spec)
    lines = [b for _, _, b in rt.logs(st["id"], follow=True)]
    assert lines == [b"first\n", b"second\n"]


def test_partial_line_and_binary_kept(rt, base_spec):
    base_spec["command"] = ["sh", "-c", "printf 'no newline\\377'"]
    st = rt.run(base_spec)
    rt.wait(st["id"])
    assert [b for _, _, b in rt.logs(st["id"])] == [b"no newline\xff"]


def test_container_never_blocks_on_output(rt, base_spec):
    # 4 MB of output, far beyond a pipe's 64 KiB, with no reader attached.
    base_spec["command"] = [
        "sh",
        "-c",
        "head -c 4000000 /dev/zero | tr '\\0' 'x' | fold -w 100; echo; echo end",
    ]
    st = rt.run(base_spec)
    assert rt.wait(st["id"]) == 0
    wait_log(rt, st["id"], b"end\n")


def test_since_keeps_an_iso_times_nanoseconds():
    """An entry's own timestamp given back as `since` includes that entry: the nanoseconds
    are kept as written, not rounded through a float (today's seconds as a float hold only
    about a quarter of a microsecond: the first entry was sometimes left out)."""
    from runtime.container.logs import parse_since

    assert parse_since("2026-12-05T20:52:07.748573104Z") == "2026-12-05T20:52:07.748573104Z"
    assert parse_since("2026-12-05T21:52:07.5+01:00") == "2026-12-05T20:52:07.500000000Z"
    assert parse_since("2026-12-05T15:52:07.123-0500") == "2026-12-05T20:52:07.123000000Z"
    assert parse_since("2026-12-05") == "2026-12-05T00:00:00.000000000Z"
    with pytest.raises(InvalidSpec):
        parse_since("2026-13-05")


def test_a_follow_begun_before_the_start_outlasts_a_failed_look(rt, base_spec):
    """`docker start -a` follows a created container's log before starting it: the follow
    waits through the start, and a look at its status that fails for a moment (racing the
    start's files) does not end it with nothing."""
    import threading

    from runtime.container import logs

    base_spec["command"] = ["sh", "-c", "echo started"]
    cid = rt.create(base_spec)["id"]

    class FailsThreeLooks:
        def __init__(self):
            self.fails = 3

        def __getattr__(self, name):
            return getattr(rt, name)

        def state(self, ref):
            if self.fails:
                self.fails -= 1
                raise OSError("the state read raced the start")
            return rt.state(ref)

    flaky = FailsThreeLooks()
    starter = threading.Timer(0.5, rt.start, [cid])
    starter.start()
    try:
        lines = [b for _, _, b in logs.read_logs(flaky, cid, follow=True)]
    finally:
        starter.join()
    assert flaky.fails == 0
    assert lines == [b"started\n"]


def test_a_follow_of_a_removed_container_ends(rt, base_spec):
    """Only a removal (or looks failing for seconds) ends a follow early."""
    from runtime.container import logs

    cid = rt.create(base_spec)["id"]
    entries = logs.read_logs(rt, cid, follow=True)
    rt.delete(cid, force=True)
    assert list(entries) == []
