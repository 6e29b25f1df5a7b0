"""The runtime's checkpoint verbs: create, list, remove, start from, export and import."""

from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path

from runtime.container import checkpoints, criu, criu_userns, portable, restore
from runtime.container import status as sm
from runtime.container.checkpoint import mark
from runtime.container.fsutil import proc_start_time, read_json
from runtime.errors import InvalidState


def freezer_dir(rt, cid: str) -> str | None:
    """The container's v1 freezer group: CRIU freezes the whole tree through it at once."""
    mounts = getattr(rt.cgroups, "mounts", None) or {}
    if "freezer" not in mounts:
        return None  # CRIU then seizes the tasks one by one with ptrace
    return f"{mounts['freezer']}/{rt.config.prefix}/{cid}"


def _hold_root(pid: int) -> int | None:
    """A reference to the container's root mount, held across the dump.

    Without it the last one can be CRIU's: its exit then shuts the overlay down, which
    syncs the whole file system under the upper layer (the images just written included),
    tens of ms inside the freeze. Let go once the tasks are gone (let_go)."""
    try:
        return os.open(f"/proc/{pid}/root", os.O_PATH | os.O_CLOEXEC)
    except OSError:
        return None


def let_go(fd: int | None) -> None:
    """Drop the root's reference (the overlay's sync, if it is the last, happens here)."""
    if fd is not None:
        os.close(fd)


@contextlib.contextmanager
def frozen_by_us(rt, cid: str, argv: list[str]):
    """Freeze the container's cgroup before CRIU's dump (CRIU's own freeze of a v1 group
    polls every 100 ms, all of it downtime); thawed after, whatever the dump did: CRIU
    leaves a group it found frozen frozen, and tasks it killed there would not die."""
    if "--freeze-cgroup" not in argv:
        yield
        return
    rt.cgroups.freeze(cid)
    mark("src:frozen")
    try:
        yield
    finally:
        mark("src:criu-exited")
        with contextlib.suppress(Exception):
            rt.cgroups.thaw(cid)


def checkpoint(
    rt,
    ref,
    name,
    leave_running=False,
    export=None,
    tcp_established=False,
    parent=None,
    on_dumped=None,
    follow=None,
    hold_root=None,
) -> dict:
    """Dump a running container into checkpoint `name` (stopping it unless leave_running).

    `parent` names a pre-dump of this checkpoint (precopy.py): only pages dirtied since it
    are written, the rest stay in NAME.pre where the images' parent link points.
    `on_dumped(path)` runs as soon as the checkpoint is whole, before the bookkeeping of the
    stopped container (a migration sends it on while that happens). `follow(images, proc)`
    runs while CRIU dumps (criu.run_dump): a migration sends the pages as they are written.
    `hold_root` (a list): the reference to the root mount (_hold_root) is put there, for
    the caller to let go (let_go) once the freeze is over, whatever happened."""
    cid = rt.store.resolve(ref)
    paths = rt.store.paths(cid)
    with rt.store.locked(cid):
        rec, obs = rt._observe(cid)
        if obs["status"] != sm.RUNNING:
            hint = "; unpause it first" if obs["status"] == sm.PAUSED else ""
            raise InvalidState(
                f"cannot checkpoint container {rec['name']}: it is {obs['status']}{hint}"
            )
        criu.refuse_unsupported(rec)
        checkpoints.clear_partials(paths, keep=name if parent else None)
        partial = checkpoints.begin(paths, name)
        pid = obs["pid"]
        held = None if leave_running else _hold_root(pid)
        if hold_root is not None:
            hold_root.append(held)  # the caller lets it go
            held = None
        try:
            meta = checkpoints.describe(
                rec, pid, name, leave_running=leave_running, tcp=tcp_established
            )
            meta.update(created=rt.store.now(), network=read_json(paths.network_file, {}) or {})
            if not leave_running:
                # CRIU kills the tree after the dump: no restart, no post-exit hook.
                paths.stop_flag.touch()
                paths.caller_cleans.touch()
            argv = criu.dump_argv(
                pid,
                partial / "images",
                leave_running=leave_running,
                tcp_established=tcp_established,
                freezer=freezer_dir(rt, cid),
                mounts=meta["mounts"],
                files=meta["stdio"],
                parent=f"../../{name}.pre/{parent}" if parent else None,
                userns=rec["spec"]["namespaces"].get("user") == "private",
            )
            mark("src:criu-dump")
            with frozen_by_us(rt, cid, argv):
                criu.run_dump(argv, partial / "images", follow)
            mark("src:criu-dump-done")
        except BaseException:
            shutil.rmtree(partial, ignore_errors=True)
            if not leave_running:  # CRIU resumed the tasks: they run on as before
                paths.stop_flag.unlink(missing_ok=True)
                paths.caller_cleans.unlink(missing_ok=True)
            let_go(held)
            raise
        final = checkpoints.finish(partial, meta)
        failed = None
        if on_dumped:
            try:
                on_dumped(final)
            except Exception as err:  # raised once the stopped container is put in order
                failed = err
        if not leave_running:
            rt._wait_stopped(cid, 10)
            let_go(held)
            rt._detach_network(cid)
            state = rt.store.read_state(cid)
            state["user_stopped"] = True
            rt.store.write_state(cid, state)
        if failed is not None:
            raise failed
        if export:
            try:
                portable.export(rt, rec, final, export)
            finally:
                # An exported checkpoint lives in its archive, not on this host as well.
                shutil.rmtree(final, ignore_errors=True)
    return {"name": name, "created": meta["created"], "container": cid}


def listing(rt, ref) -> list[dict]:
    """The container's checkpoints: [{"name", "created"}], oldest first."""
    return checkpoints.listing(rt.store.paths(rt.store.resolve(ref)))


def remove(rt, ref, name) -> None:
    """Delete one checkpoint of the container."""
    cid = rt.store.resolve(ref)
    with rt.store.locked(cid):
        checkpoints.remove(rt.store.paths(cid), name)


def start_from(rt, ref, name) -> dict:
    """Restore a stopped container from its checkpoint `name`."""
    cid = rt.store.resolve(ref)
    with rt.store.locked(cid):
        rec, obs = rt._observe(cid)
        if obs["process"]:
            raise InvalidState(
                f"cannot restore container {rec['name']}: it is {obs['status']}; stop it first"
            )
        where = checkpoints.path(rt.store.paths(cid), name)
        _restore_locked(rt, rec, where)
    return rt.state(cid)


def _restore_locked(rt, rec: dict, where, lazy=None) -> None:
    cid = rec["id"]
    if not rt.cgroups.exists(cid):
        rt.make_cgroups(rec)
    mark("dst:cgroups")
    rt.store.paths(cid).exit_file.unlink(missing_ok=True)
    restore.restore(rt, rec, where / "images", checkpoints.read_meta(where), lazy=lazy)
    state = rt.store.read_state(cid)
    state.update(started_at=rt.store.now(), user_stopped=False, restart_count=0)
    rt.store.write_state(cid, state)


def import_(rt, archive, name=None, labels=None) -> dict:
    """Create a container from an exported checkpoint archive and restore it running."""
    with portable.unpacked(rt, archive) as (manifest, where):
        return import_unpacked(rt, manifest, where, name, labels)


def import_unpacked(rt, manifest: dict, where, name=None, labels=None, lazy=None) -> dict:
    """Create a container from a verified checkpoint in `where` (images/, meta.json,
    upper.tar) and restore it running; nothing of it is left if that fails. `lazy`: see
    restore.restore (post-copy)."""
    spec = dict(manifest["spec"])
    spec["name"] = name or manifest["name"]
    if labels is not None:
        spec["labels"] = dict(labels)
    if not (spec.get("namespaces") or {}).get("user"):
        # An archive from before user namespaces were the default: what it ran in says.
        inside = criu_userns.image(Path(where) / "images") is not None
        spec["namespaces"] = dict(
            spec.get("namespaces") or {}, user="private" if inside else "host"
        )
    _keep_range(rt, spec, where)
    mark("dst:import")
    rec = portable.check_image(rt, manifest, rt._prepare(spec))
    mark("dst:prepared")
    rt._settle_userns(rec)  # the archive's setting; a private one gets its key's range here
    _move_volumes(rt, rec, where)
    me = os.getpid()  # a restore killed half-way is then cleared like a killed create
    rec["creating"] = {"pid": me, "start": proc_start_time(me)}
    cid = rec["id"]
    rt.store.publish_record(rec)
    try:
        rt._claim_name(rec["name"], cid)
        paths = rt.store.paths(cid)
        for d in (paths.upper, paths.work, paths.merged):
            d.mkdir(parents=True, exist_ok=True, mode=0o755)
        portable.unpack_upper(where, paths.upper)
        mark("dst:upper-unpacked")
        rt.store.write_state(cid, {"started_at": None})
        with rt.store.locked(cid):
            _restore_locked(rt, rec, where, lazy)
            del rec["creating"]
            rt.store.write_record(rec)
    except BaseException:
        with contextlib.suppress(Exception):
            rt._teardown(cid, rec["name"], network=True)
        raise
    return rt.state(cid)


def _keep_range(rt, spec: dict, where) -> None:
    """A user-namespaced checkpoint: its key takes the range it was dumped with when this
    host has none for it yet and that range is free (else restore maps it to this host's)."""
    image = criu_userns.image(Path(where) / "images")
    if image is None or (spec.get("namespaces") or {}).get("user") != "private":
        return
    from runtime.container import userns_ranges

    key = (spec.get("labels") or {}).get(userns_ranges.LABEL) or userns_ranges.DEFAULT_KEY
    uid = criu_userns.read_maps(image)["uid"]
    if len(uid) == 1 and uid[0][0] == 0:
        userns_ranges.claim(rt.config, key, uid[0][1])


def _move_volumes(rt, rec: dict, where) -> None:
    """Named volumes copied with the source's owners follow the container into this host's
    range for its key, when that differs from the range the checkpoint was dumped with."""
    image = criu_userns.image(Path(where) / "images")
    if image is None or not rec.get("userns"):
        return
    from runtime.container import plan

    uid = criu_userns.read_maps(image)["uid"]
    new = rec["userns"]
    if len(uid) != 1 or uid[0][1] == new["first"]:
        return
    # A volume other containers here use stays theirs (their range owns it).
    used = {
        m.get("source")
        for st in rt.list()
        if st["id"] != rec["id"]
        for m in st["spec"].get("mounts") or []
        if m.get("type") == "volume"
    }
    for m, asked in zip(plan.mounts(rt.spec_of(rec), rt.config), _volume_names(rec), strict=True):
        if m["type"] == "volume" and asked not in used and os.path.isdir(m["source"]):
            criu_userns.move_volume(m["source"], uid[0][1], new["first"], new["count"])


def _volume_names(rec: dict) -> list:
    """The spec's mount sources in order (a volume's name where plan.mounts has its path)."""
    return [m.get("source") for m in rec["spec"].get("mounts") or []]


def export_existing(rt, ref, name, target) -> None:
    """Write the container's checkpoint `name` (kept on this host) to an archive file."""
    cid = rt.store.resolve(ref)
    with rt.store.locked(cid):
        rec = rt.store.read_record(cid)
        portable.export(rt, rec, checkpoints.path(rt.store.paths(cid), name), target)
