"""Pre-copy live migration, runtime side: memory goes ahead in rounds, then a short freeze.

Source (send): `criu pre-dump --track-mem` rounds while the container runs, each round's pages
sent to the target at once (round N holds only pages dirtied since round N-1); rounds stop
when the dirty set is small, stops shrinking, or after MAX_ROUNDS. Then the freeze: the final
dump writes only what changed since the last round (--prev-images-dir), and it, the upper
layer and the container's spec go over; the target restores and answers. The container
is down from the final dump until the target's restore is done: that is the downtime.

On the source the pre-dumps and the final images form an ordinary checkpoint (NAME with
NAME.pre): if the target says it failed, the source restores from it at once, where it was.
If the target never answers, the caller decides (the target may have restored after all).
"""

from __future__ import annotations

import contextlib
import os
import platform
import secrets
import shutil
import time
from pathlib import Path

from runtime.container import checkpoint_verbs, checkpoints, criu, portable
from runtime.container import status as sm
from runtime.container.checkpoint import mark, pause_at
from runtime.container.precopy_wire import Channel, PeerFailed, WireError
from runtime.errors import InvalidState

MAX_ROUNDS = 5
SMALL_ENOUGH = 2 << 20  # a dirty set this small is sent during the freeze itself
SHRINK = 0.8  # a round must dirty at most this share of the one before to be worth another


class PageFollower:
    """Sends the final dump's pages files to the target while CRIU writes them (the
    transfer overlaps the dump instead of following it), in sealed records as every
    file. A failure to send is kept (`error`) and raised once CRIU is done: CRIU is
    never stopped half-way (it may have its parasite in the tasks)."""

    def __init__(self, ch: Channel, name: str):
        self.ch = ch
        self.name = name
        self.sent: set[str] = set()
        self.error: BaseException | None = None

    def __call__(self, images: Path, proc) -> None:
        """Follow pages-1.img, pages-2.img... under `images` until CRIU (`proc`) exits."""
        seen = []

        def exited() -> bool:
            if seen:
                return True
            if proc.poll() is None:
                return False
            seen.append(mark("src:criu-exit-seen"))
            return True

        n = 1
        try:
            while True:
                path = images / f"pages-{n}.img"
                while not path.exists():
                    if exited():
                        return
                    time.sleep(0.001)
                after = images / f"pages-{n + 1}.img"
                # CRIU writes one task's pages, closes them, then opens the next task's.
                name = f"{self.name}/images/{path.name}"
                self.ch.send_growing(path, name, lambda a=after: exited() or a.exists())
                self.sent.add(name)
                mark(f"src:sent-{path.name}")
                n += 1
        except (OSError, WireError) as err:
            self.error = err
            proc.wait()


def _pages(images: Path) -> int:
    return sum(p.stat().st_size for p in images.glob("pages-*.img"))


def _predump(rt, cid: str, where: Path, parent: str | None) -> int:
    """One pre-dump round of the running container into `where`; the bytes of its pages."""
    with rt.store.locked(cid):
        rec, obs = rt._observe(cid)
        if obs["status"] != sm.RUNNING:
            raise InvalidState(f"container {rec['name']} is {obs['status']}, not running")
        criu.refuse_unsupported(rec)
        where.mkdir(mode=0o700)
        argv = criu.predump_argv(
            obs["pid"], where, freezer=checkpoint_verbs.freezer_dir(rt, cid), parent=parent
        )
        criu.run_dump(argv, where)
    return _pages(where)


def send(rt, ref: str, ch: Channel, name: str, *, tcp_established=False, progress=None) -> dict:
    """Move the running container over `ch` (authenticated already); returns timings.

    Raises before the freeze: the container runs on, untouched. Raises WireError with
    "failed" from the target: the container is resumed here first. Any other error after
    the freeze: the container is stopped here with its checkpoint kept (`name`)."""
    cid = rt.store.resolve(ref)
    paths = rt.store.paths(cid)
    top = checkpoints.root(paths)
    pre = checkpoints.pre_dir(paths, name)
    if (top / name).exists():
        raise InvalidState(f"checkpoint {name} exists already")
    rec = rt.store.read_record(cid)
    _target_ready(ch, rec)
    shutil.rmtree(pre, ignore_errors=True)
    pre.mkdir(parents=True, mode=0o700)
    rounds: list[int] = []
    try:
        # Without the kernel's dirty tracking a round would have to be sent again in full
        # during the freeze: then the final dump is the only one (stop-and-copy).
        while criu.dirty_tracking():
            n = len(rounds) + 1
            parent = f"../pre-{n - 1}" if rounds else None
            size = _predump(rt, cid, pre / f"pre-{n}", parent)
            ch.send_tree(top, pre / f"pre-{n}")
            rounds.append(size)
            ch.send({"t": "round", "n": n, "bytes": size})
            if progress:
                progress({"round": n, "bytes": size})
            shrinking = n == 1 or size <= rounds[-2] * SHRINK
            if size <= SMALL_ENOUGH or not shrinking or n >= MAX_ROUNDS:
                break
        frozen = time.monotonic()
        mark("src:freeze")
    except BaseException:
        shutil.rmtree(pre, ignore_errors=True)
        raise
    times = {}
    follower = PageFollower(ch, name)
    held: list = []  # the root mount's reference: its release may sync the disk, not now

    def ship(final: Path) -> None:
        # Straight after the dump: the source's own bookkeeping runs after this.
        times["dumped"] = time.monotonic()
        mark("src:dumped")
        if follower.error is not None:
            raise WireError(f"sending the pages failed: {follower.error}")
        portable.tar_upper(paths.upper, final / "upper.tar")
        mark("src:upper-tarred")
        ch.send_tree(top, final, frozenset(follower.sent))
        mark("src:files-sent")
        meta = checkpoints.read_meta(final)
        ch.send({"t": "final", "name": name, "manifest": manifest(rec, meta)})
        # The answer before the source's own bookkeeping (its network, the stopped tasks):
        # the target restores on a machine this side leaves alone meanwhile.
        try:
            times["answer"] = ch.recv()  # none at all: raised, the caller asks the target
        except PeerFailed as err:
            times["failed"] = err
        finally:
            times["restored"] = time.monotonic()
            mark("src:answer-heard")
            _let_go(held)  # the freeze is over: a sync of the disk may take its time now

    try:
        checkpoint_verbs.checkpoint(
            rt,
            cid,
            name,
            tcp_established=tcp_established,
            parent=f"pre-{len(rounds)}" if rounds else None,
            on_dumped=ship,
            follow=follower,
            hold_root=held,
        )
    except BaseException:
        _let_go(held)
        if "dumped" not in times:  # the dump failed: CRIU resumed the tasks, nothing went
            shutil.rmtree(pre, ignore_errors=True)
        raise
    dumped, restored, answer = times["dumped"], times["restored"], times.get("answer") or {}
    if "failed" in times:
        resume(rt, cid, name)
        raise WireError(f"the target failed ({times['failed']}); the container runs on here")
    if answer.get("t") != "restored":
        resume(rt, cid, name)
        raise WireError(f"the target answered {answer.get('t')!r}; the container runs on here")
    return {
        "rounds": rounds,
        "dirty_tracking": criu.dirty_tracking(),
        "sent": ch.sent,
        "dump_ms": round((dumped - frozen) * 1000, 1),
        "downtime_ms": round((restored - frozen) * 1000, 1),
        "restore_ms": answer.get("restore_ms"),
        "state": answer.get("state") or {},
    }


def _let_go(held: list) -> None:
    while held:
        checkpoint_verbs.let_go(held.pop())


def _target_ready(ch: Channel, rec: dict) -> None:
    """Before anything stops: the target checks what it can without the dump (its
    architecture, the image, the network) and gets ready; a refusal raises here, with the
    container running on untouched."""
    ch.send({"t": "prepare", "manifest": manifest(rec, {})})
    try:
        answer = ch.recv()
    except PeerFailed as err:
        raise WireError(f"the target refused the container ({err}); it runs on here") from None
    if answer.get("t") != "ready":
        raise WireError(f"the target answered {answer.get('t')!r} to the preparation")


def prepare_here(rt, header: dict) -> None:
    """Target side of _target_ready: refuse what would fail after the freeze, and do now
    what the restore would otherwise do during it for the first time (CRIU's check, the
    compiled shim, the default bridge, the modules a restore imports on first use)."""
    from runtime.container import plan, shimbin, userns_ranges  # noqa: F401 (once, here)
    from runtime.network.manager import DEFAULT_NETWORK

    got = manifest_for_here(header)
    criu.binary()
    shimbin.ensure(rt.config.root)  # built on a host's first start: 170 ms, not in the freeze
    rec = portable.check_image(rt, got, rt._prepare(dict(got["spec"])))
    network = rec["spec"]["network"]
    if network["mode"] == "bridge" and DEFAULT_NETWORK in (
        network.get("networks") or [DEFAULT_NETWORK]
    ):
        rt.networks.ensure_default()


def resume(rt, cid: str, name: str) -> None:
    """Restore the container here from its migration checkpoint, then drop the checkpoint."""
    with contextlib.suppress(Exception):
        if rt.state(cid)["status"] != sm.RUNNING:
            checkpoint_verbs.start_from(rt, cid, name)
    with contextlib.suppress(Exception):
        checkpoint_verbs.remove(rt, cid, name)


def manifest(rec: dict, meta: dict) -> dict:
    """What the target needs besides the images: spec, image and architecture."""
    return {
        "arch": platform.machine(),
        "name": rec["name"],
        "image": rec["image"],
        "image_id": rec["image_id"],
        "spec": rec["spec"],
        "meta": meta,
    }


def receive(rt, ch: Channel, *, name=None, labels=None) -> dict:
    """Target side: take the rounds and the final checkpoint, restore the container running,
    answer the source; returns its state. On failure nothing of it is left, and the source
    is told (it resumes the container)."""
    stage = new_stage(rt)
    try:
        header = _take_files(ch, stage, rt)
        mark("dst:files-in")
        pause_at("precopy-final")  # tests kill the target here, the whole checkpoint in hand
        try:
            started = time.monotonic()
            got = manifest_for_here(header)
            where = stage / checkpoints_name(header.get("name"))
            if not (where / "images").is_dir() or not (where / "upper.tar").is_file():
                raise WireError("the final checkpoint is incomplete")
            if not (where / "meta.json").is_file():
                raise WireError("the final checkpoint has no meta.json")
            state = checkpoint_verbs.import_unpacked(rt, got, where, name, labels)
        except BaseException as err:
            with contextlib.suppress(OSError):
                ch.send({"t": "failed", "error": str(err)[:2000]})
            raise
        answer_restored(ch, state, started)
        mark("dst:answered")
        return state
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def new_stage(rt) -> Path:
    """A private directory for a received checkpoint; stages of killed receivers are removed
    ("precopy-PID-..." whose PID is gone)."""
    scratch = Path(rt.config.root) / "tmp"
    _clear_stale(scratch)
    stage = scratch / f"precopy-{os.getpid()}-{secrets.token_hex(6)}"
    stage.mkdir(parents=True, mode=0o700)
    return stage


def manifest_for_here(header: dict) -> dict:
    """The checkpoint's manifest, refused unless it was made on this machine's architecture."""
    got = header.get("manifest") or {}
    if got.get("arch") != platform.machine():
        raise WireError(f"the checkpoint is for {got.get('arch')}, not this host")
    return got


def answer_restored(ch: Channel, state: dict, started: float) -> None:
    """Tell the source the container runs here, with the restore's time since `started`."""
    took = round((time.monotonic() - started) * 1000, 1)
    snapshot = {k: state.get(k) for k in ("id", "status", "pid", "network")}
    ch.send({"t": "restored", "restore_ms": took, "state": snapshot})


def _clear_stale(scratch: Path) -> None:
    """Remove what receivers killed half-way left (their pid is in the name, and gone)."""
    for old in scratch.glob("precopy-*"):
        pid = old.name.split("-")[1]
        if pid.isdigit() and not Path(f"/proc/{pid}").exists():
            shutil.rmtree(old, ignore_errors=True)


def checkpoints_name(name) -> str:
    """The final checkpoint's directory name, checked."""
    try:
        checkpoints.check_name(name)
    except Exception:
        raise WireError(f"bad checkpoint name {name!r}") from None
    return name


def _take_files(ch: Channel, stage: Path, rt=None) -> dict:
    """Files and links until the "final" message, which is returned."""
    while True:
        header = ch.recv()
        kind = header.get("t")
        if kind == "file":
            ch.recv_file(header, stage)
        elif kind == "stream":
            ch.recv_stream(header, stage)
        elif kind == "link":
            ch.recv_link(header, stage)
        elif kind == "final":
            return header
        elif kind == "prepare":
            try:
                prepare_here(rt, header)
            except Exception as err:
                ch.send({"t": "failed", "error": str(err)[:2000]})
                raise
            ch.send({"t": "ready"})
        elif kind != "round":
            raise WireError(f"unexpected message {kind!r}")
