"""Pre-copy migration with real CRIU, both ends on one runtime over a loopback connection."""

import hashlib
import hmac
import threading

import pytest

from runtime.container import criu, postcopy, precopy, precopy_wire
from runtime.errors import InvalidSpec
from tests.criu_support import criu_problem
from tests.runtime.test_criu import _counter, _no_leftovers, _numbers, _uid_map, _wait_count

_PROBLEM = criu_problem()
pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(bool(_PROBLEM), reason=_PROBLEM or "criu works"),
]

KEYS = {"src": b"source-key", "dst": b"target-key"}


def _signer(host):
    return lambda msg: hmac.new(KEYS[host], msg, hashlib.sha256).digest()


def _verifier(host):
    return lambda msg, sig: hmac.compare_digest(_signer(host)(msg), sig)


def _move(rt, ref, new_name, *, source_key="src"):
    """Run the target in a thread and the source here; returns (sent, received or error)."""
    listener = precopy_wire.listen("127.0.0.1")
    port = listener.getsockname()[1]
    got = {}

    def target():
        try:
            ch = precopy_wire.accept(listener, 30)
            with ch.sock:
                precopy_wire.prove_target(ch, "s1", "src", _signer("dst"), _verifier("src"))
                got["state"] = precopy.receive(rt, ch, name=new_name)
        except Exception as err:  # noqa: BLE001 (reported to the test)
            got["error"] = err
        finally:
            listener.close()

    thread = threading.Thread(target=target)
    thread.start()
    try:
        ch = precopy_wire.connect("127.0.0.1", port, 30)
        with ch.sock:
            precopy_wire.prove_source(ch, "s1", "src", _signer(source_key), _verifier("dst"))
            return precopy.send(rt, ref, ch, "migrate-t1"), got
    finally:
        thread.join(60)


def test_precopy_moves_the_counter_and_it_goes_on(rt):
    _counter(rt, "pc-src", userns="private")  # the default: a user namespace of its own
    mapped = _uid_map(rt, "pc-src")
    sent, got = _move(rt, "pc-src", "pc-dst")
    assert "error" not in got, got
    if criu.dirty_tracking():  # else (no CONFIG_MEM_SOFT_DIRTY) one final dump only
        assert sent["rounds"] and sent["rounds"][0] > 0  # memory went ahead while it ran
    assert sent["downtime_ms"] > 0
    assert rt.state("pc-src")["status"] == "stopped"
    last = _numbers(rt, "pc-src")[-1]
    got = _wait_count(rt, "pc-dst", last + 3)
    assert got[0] > 5 and got[0] <= last + 2  # continued from the source's count
    assert _uid_map(rt, "pc-dst") == mapped
    rt.delete("pc-src", force=True)
    _no_leftovers(rt)


def test_a_failed_restore_resumes_the_source(rt):
    _counter(rt, "pc-stay")
    _counter(rt, "pc-taken")  # the target's name is taken: its restore fails
    with pytest.raises(InvalidSpec, match="runs on here"):
        _move(rt, "pc-stay", "pc-taken")
    assert rt.state("pc-stay")["status"] == "running"
    now = _numbers(rt, "pc-stay")[-1]
    _wait_count(rt, "pc-stay", now + 3)
    assert rt.checkpoints("pc-stay") == []
    _no_leftovers(rt)


def test_a_target_without_the_image_refuses_before_the_freeze(rt, monkeypatch):
    """The target checks the image (and what else it can) before anything stops: a refusal
    leaves the very same process running, with no checkpoint made."""
    _counter(rt, "pc-img")
    pid = rt.state("pc-img")["pid"]
    real = precopy.prepare_here

    def another_image(target_rt, header):
        manifest = {**header["manifest"], "image_id": "sha256:" + "0" * 64}
        return real(target_rt, {**header, "manifest": manifest})

    monkeypatch.setattr(precopy, "prepare_here", another_image)
    with pytest.raises(precopy_wire.WireError, match="refused.*runs on here"):
        _move(rt, "pc-img", "pc-img2")
    st = rt.state("pc-img")
    assert st["status"] == "running" and st["pid"] == pid  # never frozen, never dumped
    assert rt.checkpoints("pc-img") == []
    _no_leftovers(rt)


def test_a_source_with_the_wrong_key_is_refused(rt):
    _counter(rt, "pc-key")
    with pytest.raises(precopy_wire.WireError):
        _move(rt, "pc-key", "pc-key2", source_key="dst")
    assert rt.state("pc-key")["status"] == "running"
    _no_leftovers(rt)


def _move_post(rt, ref, new_name, answer=True):
    """Post-copy: a control and a pages connection, both proven, target in a thread (which
    closes both without a word when it fails and `answer` is False)."""
    listener = precopy_wire.listen("127.0.0.1")
    port = listener.getsockname()[1]
    got = {}

    def target():
        try:
            ch = precopy_wire.accept(listener, 30)
            pages = precopy_wire.accept(listener, 30)
            with ch.sock, pages.sock:
                precopy_wire.prove_target(ch, "s2", "src", _signer("dst"), _verifier("src"))
                precopy_wire.prove_target(
                    pages, "s2/pages", "src", _signer("dst"), _verifier("src")
                )
                if not answer:  # no "failed" message: the connections just end
                    plain_send = ch.send
                    ch.send = lambda h: None if h.get("t") == "failed" else plain_send(h)
                got["state"] = postcopy.receive(rt, ch, pages.sock, name=new_name)
        except Exception as err:  # noqa: BLE001 (reported to the test)
            got["error"] = err
        finally:
            listener.close()

    thread = threading.Thread(target=target)
    thread.start()
    try:
        ch = precopy_wire.connect("127.0.0.1", port, 30)
        pages = precopy_wire.connect("127.0.0.1", port, 30)
        with ch.sock, pages.sock:
            precopy_wire.prove_source(ch, "s2", "src", _signer("src"), _verifier("dst"))
            precopy_wire.prove_source(pages, "s2/pages", "src", _signer("src"), _verifier("dst"))
            return postcopy.send(rt, ref, ch, pages.sock, "migrate-p1"), got
    finally:
        thread.join(60)


def test_postcopy_runs_on_the_target_before_its_memory_arrives(rt):
    _counter(rt, "po-src")
    sent, got = _move_post(rt, "po-src", "po-dst")
    assert "error" not in got, got
    assert got["state"]["status"] == "running"
    assert sent["mode"] == "post-copy" and sent["downtime_ms"] > 0 and sent["pages_ms"] >= 0
    assert sent["sent"] < 8 << 20  # the memory went over the pages connection, not ahead
    assert rt.state("po-src")["status"] == "stopped"
    last = _numbers(rt, "po-src")[-1]
    now = _wait_count(rt, "po-dst", last + 3)
    assert now[0] > 5 and now[0] <= last + 2  # continued from the source's count
    rt.delete("po-src", force=True)
    _no_leftovers(rt)


def test_postcopy_target_failing_its_restore_leaves_the_source_unchanged(rt):
    _counter(rt, "po-stay")
    _counter(rt, "po-taken")  # the target's name is taken: its restore fails
    with pytest.raises(InvalidSpec, match="runs on here"):
        _move_post(rt, "po-stay", "po-taken")
    assert rt.state("po-stay")["status"] == "running"
    now = _numbers(rt, "po-stay")[-1]
    _wait_count(rt, "po-stay", now + 3)
    assert not rt.cgroups.is_frozen(rt.store.resolve("po-stay"))
    _no_leftovers(rt)


def test_postcopy_target_vanishing_before_its_restore_leaves_the_source_unchanged(rt, monkeypatch):
    class Vanished(Exception):
        pass

    def vanish(step):  # the target dies holding everything but the memory: no answer at all
        if step == "postcopy-final":
            raise Vanished(step)

    monkeypatch.setattr(postcopy, "pause_at", vanish)
    _counter(rt, "po-gone")
    with pytest.raises(InvalidSpec, match="runs on here"):
        _move_post(rt, "po-gone", "po-gone2", answer=False)
    assert rt.state("po-gone")["status"] == "running"
    now = _numbers(rt, "po-gone")[-1]
    got = _wait_count(rt, "po-gone", now + 3)
    assert got.count(1) == 1  # went on, never started again
    assert not rt.cgroups.is_frozen(rt.store.resolve("po-gone"))
    _no_leftovers(rt)


def test_postcopy_pages_failing_after_the_restore_resume_the_source(rt, monkeypatch):
    wait = postcopy.LazyPages.wait

    def broken(self):  # the page transfer dies once the target runs the container
        self.proc.kill()
        return wait(self)

    monkeypatch.setattr(postcopy.LazyPages, "wait", broken)
    _counter(rt, "po-back")
    with pytest.raises(InvalidSpec, match="every page"):
        _move_post(rt, "po-back", "po-back2")
    assert rt.state("po-back")["status"] == "running"  # from where it was frozen
    now = _numbers(rt, "po-back")[-1]
    got = _wait_count(rt, "po-back", now + 3)
    assert got.count(1) == 1
    assert not rt.cgroups.is_frozen(rt.store.resolve("po-back"))
    assert [s["name"] for s in rt.list()].count("po-back2") == 0  # the target's copy is gone
    _no_leftovers(rt)
