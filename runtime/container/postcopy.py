"""Post-copy live migration, runtime side: the container runs on the target before its memory
has arrived; the pages follow on demand (CRIU's lazy pages).

Source (send): we freeze the container's cgroup ourselves (CRIU's own freezer polls every
100 ms), then `criu dump --lazy-pages` writes everything but the memory and keeps the pages
in the stopped tasks. Those small images, the upper layer and the spec go over the control
channel; the target starts `criu lazy-pages`, then `criu restore --lazy-pages`, and answers
as soon as the container runs: freeze to answer is the downtime. The target's lazy-pages
daemon then fetches each page when it is touched (and the rest in the background) from the
source's dump over a second connection between the hosts, which the caller authenticates like
the first (the hosts' keys, precopy_wire.py). CRIU uses it through --ps-socket: no port is
opened for the pages.

Failures. Until the target answers "restored", the source's dump is made to fail (the relay
between CRIU and that connection hands it an unknown command): CRIU resumes the tasks, and
the container runs on here unchanged. After it, the target runs with part of its memory
still here: the source's dump (and its frozen tasks) stays until the target says it has every
page. If the pages stop coming, the target kills its copy (it lacks memory) and says so; the
source's dump is failed the same way and the container resumes here from where it was frozen
(what the target did meanwhile is lost). If the target's agent dies after the answer but its
lazy-pages daemon finishes, the target's copy is whole and the source's ends.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import struct
import subprocess
import threading
import time
from pathlib import Path

from runtime.container import checkpoint_verbs, checkpoints, criu, portable, precopy
from runtime.container import status as sm
from runtime.container.checkpoint import pause_at
from runtime.container.fsutil import read_json
from runtime.container.precopy_wire import Channel, PeerFailed, WireError
from runtime.errors import InvalidSpec, InvalidState, KernelError

REQUEST = 32  # sizeof(struct page_server_iov): what lazy-pages sends, one request at a time
_CLOSE = (0x1023, 0x1024)  # PS_IOV_CLOSE, PS_IOV_FORCE_CLOSE: it has every page
_POISON = struct.pack("<I", 0xFFFF) + bytes(REQUEST - 4)  # an unknown command: the dump fails
PAGES_SECONDS = 600  # the longest the target's pages may take once it runs


def _tcp_pair() -> tuple[socket.socket, socket.socket]:
    """Two connected loopback TCP sockets (CRIU's page server wants TCP); the listener lives
    only for the connect, and a stranger's connection in between is refused."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        ours = socket.create_connection(listener.getsockname(), timeout=5)
        listener.settimeout(5)
        theirs, peer = listener.accept()
    if peer != ours.getsockname():
        ours.close()
        theirs.close()
        raise KernelError("another process connected to the page relay's loopback listener")
    # No timeouts on either end: CRIU may take long to get ready (a loaded host), and the
    # relay waits for it as long as the target's connection lives.
    ours.settimeout(None)
    theirs.setblocking(True)
    return ours, theirs


def _exactly(sock: socket.socket, n: int) -> bytes | None:
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            return None
        buf += chunk
    return bytes(buf)


class PageRelay:
    """Between CRIU's page server and the connection to the target: requests one way, pages
    the other; the dump ends well only once the target has every page (`decide`)."""

    def __init__(self, net: socket.socket):
        self.net = net
        self.local, self.criu_end = _tcp_pair()
        self.closed = threading.Event()  # lazy-pages said it is done
        self._verdict = threading.Event()
        self._ok = False
        self._once = threading.Lock()
        self._ended = False
        self._threads = [
            threading.Thread(target=self._requests, daemon=True, name="berth-pages-in"),
            threading.Thread(target=self._pages, daemon=True, name="berth-pages-out"),
        ]
        for thread in self._threads:
            thread.start()

    def decide(self, ok: bool) -> None:
        """The target's word: it has every page (the dump may end well), or not (it fails)."""
        self._ok = ok
        self._verdict.set()
        if not ok:
            self._end(False)

    def fail(self) -> None:
        """Make the dump fail now: CRIU resumes the tasks."""
        self.decide(False)

    def _end(self, ok: bool, close: bytes = b"") -> None:
        with self._once:
            if self._ended:
                return
            self._ended = True
        with contextlib.suppress(OSError):
            self.local.sendall(close if ok else _POISON)
            self.local.shutdown(socket.SHUT_WR)

    def _requests(self) -> None:
        try:
            while (request := _exactly(self.net, REQUEST)) is not None:
                if struct.unpack_from("<I", request)[0] & 0xFFFF in _CLOSE:
                    # Answered here (lazy-pages then exits with its verdict); CRIU hears the
                    # close only once the target confirms over the control channel.
                    self.closed.set()
                    with contextlib.suppress(OSError):
                        self.net.sendall(bytes(4))
                    self._verdict.wait(PAGES_SECONDS)
                    self._end(self._ok, request)
                    return
                self.local.sendall(request)
        except OSError:
            pass
        self._end(False)  # the connection ended before lazy-pages had every page

    def _pages(self) -> None:
        forward = True
        while True:
            try:
                data = self.local.recv(1 << 20)
            except OSError:
                return
            if not data:
                return
            if forward and not self.closed.is_set():  # CRIU's answer to the close stays here
                try:
                    self.net.sendall(data)
                except OSError:
                    # Read on (and drop): CRIU must not block on a full socket before it
                    # reads the command that fails it.
                    forward = False
                    self._end(False)

    def join(self) -> None:
        """Wait for both directions to stop (after the dump exited)."""
        with contextlib.suppress(OSError):
            self.net.shutdown(socket.SHUT_RDWR)
        for thread in self._threads:
            thread.join(10)
        self.local.close()


def _refuse(rec: dict) -> None:
    criu.refuse_unsupported(rec)
    if rec["spec"]["namespaces"].get("user") == "private":
        # The restored tasks make their userfaultfds inside their user namespace, which the
        # kernel refuses unless vm.unprivileged_userfaultfd is 1 (not something to turn on).
        with open("/proc/sys/vm/unprivileged_userfaultfd") as f:
            if f.read().strip() != "1":
                raise InvalidSpec(
                    f"cannot migrate container {rec['name']} post-copy: it runs in a user "
                    "namespace of its own, where the kernel refuses userfaultfd "
                    "(vm.unprivileged_userfaultfd is 0); use a pre-copy migration"
                )


def send(rt, ref: str, ch: Channel, pages: socket.socket, name: str, *, tcp_established=False):
    """Move the running container over `ch`, its memory over `pages` (both authenticated
    already); returns timings. Raises before the target runs it: it runs on here, unchanged.
    Raises WireError after: the target failed to get every page (it runs on here from the
    freeze point) or did not say (the caller asks the target)."""
    criu.lazy_pipes()
    cid = rt.store.resolve(ref)
    paths = rt.store.paths(cid)
    with rt.store.locked(cid):
        rec, obs = rt._observe(cid)
        if obs["status"] != sm.RUNNING:
            raise InvalidState(f"container {rec['name']} is {obs['status']}, not running")
        _refuse(rec)
        checkpoints.clear_partials(paths)
        partial = checkpoints.begin(paths, name)
        try:
            return _send_locked(rt, rec, obs["pid"], paths, partial, ch, pages, tcp_established)
        finally:
            shutil.rmtree(partial, ignore_errors=True)


def _send_locked(rt, rec, pid, paths, partial, ch, pages, tcp_established) -> dict:
    cid, name = rec["id"], partial.name.removesuffix(".partial")
    meta = checkpoints.describe(rec, pid, name, leave_running=False, tcp=tcp_established)
    meta.update(created=rt.store.now(), network=read_json(paths.network_file, {}) or {})
    (partial / "log").mkdir(mode=0o700)
    freezer = checkpoint_verbs.freezer_dir(rt, cid)
    relay = PageRelay(pages)
    status_r, status_w = os.pipe()
    argv = criu.dump_argv(
        pid,
        partial / "images",
        leave_running=False,
        tcp_established=tcp_established,
        freezer=freezer,
        mounts=meta["mounts"],
        files=meta["stdio"],
        userns=rec["spec"]["namespaces"].get("user") == "private",
    )
    argv += criu.lazy_dump_options(relay.criu_end.fileno(), status_w, partial / "log")
    # CRIU kills the tree once the target has every page: no restart, no post-exit hook.
    paths.stop_flag.touch()
    paths.caller_cleans.touch()
    frozen = time.monotonic()
    dump = None
    try:
        if freezer:  # frozen already, CRIU seizes the tasks at once instead of polling
            rt.cgroups.freeze(cid)
        dump = subprocess.Popen(
            argv,
            cwd=partial / "images",
            pass_fds=(status_w, relay.criu_end.fileno()),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    finally:
        os.close(status_w)
        relay.criu_end.close()
        if dump is None:
            os.close(status_r)
            _resumed(rt, cid, paths, relay)
    try:
        ready = os.read(status_r, 1)
    finally:
        os.close(status_r)
    if ready != b"\0":  # the dump failed before the memory: CRIU resumed the tasks
        dump.wait()
        _resumed(rt, cid, paths, relay)
        raise KernelError(f"criu dump failed: {criu.log_tail(partial / 'log' / 'dump.log')}")
    dumped = time.monotonic()
    try:
        _ship(rt, rec, paths, partial, ch, meta)
        answer = ch.recv()
        if answer.get("t") != "restored":
            raise WireError(f"the target answered {answer.get('t')!r}")
    except BaseException as err:
        # The target never ran it: the dump fails, CRIU resumes the tasks, here, unchanged.
        relay.fail()
        dump.wait()
        _resumed(rt, cid, paths, relay)
        if isinstance(err, (WireError, OSError)):
            raise WireError(f"the target failed ({err}); the container runs on here") from None
        raise
    restored = time.monotonic()
    try:
        verdict = ch.recv()
        relay.decide(verdict.get("t") == "pages" and bool(verdict.get("ok")))
    except PeerFailed:
        relay.decide(False)
    except (WireError, OSError):
        relay.decide(True)  # not told: the pages decide (CRIU ends well only if all went)
    code = dump.wait()
    done = time.monotonic()
    if code != 0:
        _resumed(rt, cid, paths, relay)
        raise WireError(
            "the target did not get every page of the container's memory "
            f"({criu.log_tail(partial / 'log' / 'dump.log')}); the copy there is dropped and "
            "the container runs on here from where it was frozen"
        )
    relay.join()
    _thaw(rt, cid)  # killed tasks in a frozen v1 group would not die
    rt._wait_stopped(cid, 10)
    rt._detach_network(cid)
    state = rt.store.read_state(cid)
    state["user_stopped"] = True
    rt.store.write_state(cid, state)
    return {
        "mode": "post-copy",
        "sent": ch.sent,
        "dump_ms": round((dumped - frozen) * 1000, 1),
        "downtime_ms": round((restored - frozen) * 1000, 1),
        "pages_ms": round((done - restored) * 1000, 1),
        "restore_ms": answer.get("restore_ms"),
        "state": answer.get("state") or {},
    }


def _ship(rt, rec, paths, partial: Path, ch: Channel, meta: dict) -> None:
    """Everything but the memory: CRIU's images, the upper layer, meta.json, the manifest."""
    portable.tar_upper(paths.upper, partial / "upper.tar")
    (partial / "meta.json").write_text(json.dumps(meta, indent=1, sort_keys=True))
    ch.send_tree(partial, partial / "images")
    ch.send_file(partial / "upper.tar", "upper.tar")
    ch.send_file(partial / "meta.json", "meta.json")
    ch.send({"t": "final", "name": meta["name"], "manifest": precopy.manifest(rec, meta)})


def _thaw(rt, cid: str) -> None:
    """CRIU leaves a group it found frozen frozen again: ours was frozen by us."""
    with contextlib.suppress(Exception):
        rt.cgroups.thaw(cid)


def _resumed(rt, cid: str, paths, relay: PageRelay) -> None:
    """The dump failed and CRIU resumed the tasks: they run on, restartable as before."""
    relay.fail()
    relay.join()
    _thaw(rt, cid)
    paths.stop_flag.unlink(missing_ok=True)
    paths.caller_cleans.unlink(missing_ok=True)


class Unsealed:
    """The sealed page connection as a plain loopback TCP socket for `criu lazy-pages` (which
    speaks the page server's protocol itself): two threads copy between the two. A record that
    fails its check ends the copy, and lazy-pages then fails for want of pages."""

    def __init__(self, sealed):
        self.sealed = sealed
        self.local, self.criu_end = _tcp_pair()
        self._threads = [
            threading.Thread(target=self._copy, args=(sealed, self.local), daemon=True),
            threading.Thread(target=self._copy, args=(self.local, sealed), daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    @staticmethod
    def _copy(source, sink) -> None:
        with contextlib.suppress(OSError, WireError):
            while data := source.recv(1 << 20):
                sink.sendall(data)
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_WR)

    def close(self) -> None:
        """Stop both copies (the sealed connection is its owner's to close)."""
        for end in (self.local, self.criu_end):
            with contextlib.suppress(OSError):
                end.shutdown(socket.SHUT_RDWR)
            end.close()


class LazyPages:
    """The target's `criu lazy-pages` daemon, started when the restore's work dir exists."""

    def __init__(self, pages, log: Path):
        self.pages = pages
        self.log = log
        self.proc: subprocess.Popen | None = None
        self.unsealed: Unsealed | None = None

    def start(self, images: Path, work: Path) -> None:
        """Start it and wait until it listens for the restore (KernelError if it fails)."""
        self.pages.setblocking(True)
        self.unsealed = Unsealed(self.pages)
        status_r, status_w = os.pipe()
        fd = self.unsealed.criu_end.fileno()
        try:
            self.proc = subprocess.Popen(
                criu.lazy_pages_argv(images, work, fd, status_w, self.log),
                pass_fds=(status_w, fd),
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        finally:
            os.close(status_w)
            self.unsealed.criu_end.close()  # lazy-pages' own now: its exit ends the copies
        try:
            ready = os.read(status_r, 1)
        finally:
            os.close(status_r)
        if ready != b"\0":
            self.stop()
            raise KernelError(f"criu lazy-pages failed: {criu.log_tail(self.log)}")

    def wait(self) -> int:
        """Its exit code once every page is in (killed, and 1, if that takes too long)."""
        if self.proc is None:
            return 1
        try:
            return self.proc.wait(PAGES_SECONDS)
        except subprocess.TimeoutExpired:
            self.stop()
            return 1

    def stop(self) -> None:
        """Kill it (a failed restore: nothing waits for its pages), and end the copies."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        if self.unsealed is not None:
            self.unsealed.close()
            self.unsealed = None


def receive(rt, ch: Channel, pages: socket.socket, *, name=None, labels=None) -> dict:
    """Target side: take the checkpoint without its memory, restore the container running with
    its pages fetched from the source, answer "restored", then wait for every page and say so.
    If the restore fails nothing of it is left; if the pages fail the copy here is removed."""
    criu.lazy_pipes()
    stage = precopy.new_stage(rt)
    lazy = LazyPages(pages, stage / "lazy.log")
    try:
        header = precopy._take_files(ch, stage)
        pause_at("postcopy-final")  # tests kill the target here, the source frozen
        try:
            started = time.monotonic()
            got = precopy.manifest_for_here(header)
            precopy.checkpoints_name(header.get("name"))
            for part in ("images", "upper.tar", "meta.json"):
                if not (stage / part).exists():
                    raise WireError(f"the checkpoint has no {part}")
            state = checkpoint_verbs.import_unpacked(rt, got, stage, name, labels, lazy.start)
        except BaseException as err:
            lazy.stop()
            with contextlib.suppress(OSError):
                ch.send({"t": "failed", "error": str(err)[:2000]})
            raise
        precopy.answer_restored(ch, state, started)
        code = lazy.wait()
        if code != 0:
            problem = criu.log_tail(lazy.log)
            with contextlib.suppress(Exception):
                rt.delete(state["id"], force=True)  # part of its memory never came
            with contextlib.suppress(OSError):
                ch.send({"t": "failed", "error": f"pages: {problem}"[:2000]})
            raise KernelError(f"the container's memory did not all arrive ({problem})")
        ch.send({"t": "pages", "ok": True})
        return rt.state(state["id"])
    finally:
        lazy.stop()
        shutil.rmtree(stage, ignore_errors=True)
