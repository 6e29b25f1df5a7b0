"""Restore of a user-namespaced container: its idmapped rootfs and a network wired late.

CRIU makes the user namespace again (maps from userns-N.img, rewritten to the record's range
by criu_userns) and every namespace the container owned inside it. Two things it cannot
make are prepared around it, the way a fresh start (runtime.container.userns) does them:

- The root: overlay on idmapped copies of the image layers and of the directory holding
  upper and work (so files keep the image's ids on disk and root's files look root-owned
  inside), staged on a private tmpfs in the shim-to-be's mount namespace and given to CRIU
  as --root; the container's bind mounts are idmapped trees next to it (external mounts).
- The network: a namespace made beforehand is owned by the host's user namespace, which the
  restored tasks may not enter (setns: EPERM, CRIU's "Can't unshare net-namespace"). CRIU
  makes an empty one inside the restored user namespace (--empty-ns net) and runs an action
  script at setup-namespaces; the script hands the restored init's pid to the caller over a
  FIFO and waits until the caller has wired that namespace (same address when free).
"""

from __future__ import annotations

import contextlib
import os
import select
import socket
import stat
import time
from pathlib import Path

from runtime import linux
from runtime.container import userns
from runtime.container.rootfs import MASKED_PATHS, STANDARD_DEVICES
from runtime.errors import KernelError

# The restored tasks open CRIU's external mount sources themselves, from inside their user
# namespace: they must reach them by a path every user may traverse. Each restore mounts its
# own tmpfs on STAGE_ROOT/<container id>, in its private mount namespace: the host sees an
# empty directory during the restore (one per container: a restore holds its lock), removed
# after; never a shared one (an rmdir would detach the mounts of a restore still using it).
STAGE_ROOT = "/run/berth-restore-stage"


def stage_dir(cid: str) -> str:
    """Where the restore of container `cid` stages its rootfs and external mounts."""
    return f"{STAGE_ROOT}/{cid}"


_SCRIPT = """#!/bin/sh
# CRIU's action script (runtime/container/restore_userns.py): wire the restored netns.
[ "$CRTOOLS_SCRIPT_ACTION" = setup-namespaces ] || exit 0
echo "$CRTOOLS_INIT_PID" > '{work}/ns.fifo' || exit 1
read -r answer < '{work}/ok.fifo'
[ "$answer" = ok ]
"""


def range_of(rt, rec: dict) -> dict | None:
    """{"first", "count"} of a user-namespaced container (None: the host's user namespace)."""
    if rec["spec"]["namespaces"].get("user") != "private":
        return None
    first, count = userns.legacy_range(rt.config)  # made before ranges were kept in records
    info = rec.get("userns") or {"first": first, "count": count}
    return {"first": info["first"], "count": info["count"]}


def device_sources() -> dict[str, str]:
    """Host sources of the binds a user-namespaced container has instead of device nodes
    (mknod is refused there): the standard devices, and /dev/null over the masked files."""
    sources = {}
    for name, major, minor in STANDARD_DEVICES:
        path = f"/dev/{name}"
        st = os.stat(path)
        if not stat.S_ISCHR(st.st_mode) or st.st_rdev != os.makedev(major, minor):
            raise KernelError(f"host device {path} ({major}:{minor}) not found")
        sources[path] = path
    for path in MASKED_PATHS:
        sources[path] = "/dev/null"
    return sources


def staged(mounts: dict[str, str], idmapped: set[str], made: list, where: str) -> dict[str, str]:
    """The external mounts' sources as CRIU must see them: every host path but a device's
    moves under `where` (stage_dir) (the restored tasks open them, and cannot traverse the runtime's
    root-only directories); `made` receives (host source, name, idmap) for mount_root."""
    out = {}
    for i, (point, source) in enumerate(sorted(mounts.items())):
        if source.startswith("/dev/"):  # /dev/null..., a TTY's pty: reachable as they are
            out[point] = source
            continue
        made.append((source, f"e{i}", source in idmapped))
        out[point] = f"{where}/e{i}"
    return out


def mount_root(rec: dict, paths, user_fd: int, made: list) -> str:
    """In the shim-to-be (own mount namespace): a tmpfs at stage_dir with the idmapped rootfs
    at its root/ and the external mounts' sources (bind mounts idmapped, as at start);
    returns the root's path for CRIU's --root. `user_fd` (a user namespace with the
    container's map, userns.kept) is closed here."""
    flags = linux.OPEN_TREE_CLONE | linux.OPEN_TREE_CLOEXEC
    trees: list[int] = []
    try:
        trees += userns.idmapped_layers(rec["lower"], user_fd)
        trees.append(linux.open_tree(os.path.dirname(paths.upper), flags))
        linux.mount_setattr_idmap(trees[-1], user_fd)
        for source, _, idmap in made:
            trees.append(linux.open_tree(source, flags | linux.AT_RECURSIVE))
            if idmap:  # as at start: a file system without idmapped mounts keeps the bind
                with contextlib.suppress(KernelError):
                    linux.mount_setattr_idmap(trees[-1], user_fd)
    except BaseException:
        userns.close_all([*trees, user_fd])
        raise
    try:
        return _stage(rec, paths, made, trees, user_fd, stage_dir(rec["id"]))
    finally:
        os.close(user_fd)


def _stage(rec: dict, paths, made: list, trees: list[int], user_fd: int, where: str) -> str:
    layers = len(rec["lower"])
    for _ in range(5):  # another restore's remove_stage_dir may take STAGE_ROOT in between
        with contextlib.suppress(FileNotFoundError):
            os.makedirs(where, mode=0o755, exist_ok=True)
            break
    os.chmod(STAGE_ROOT, 0o755)  # not the umask's: the restored tasks traverse it
    stage = linux.fsmount_new("tmpfs", {"mode": "0755", "size": "64k"})
    try:
        linux.move_mount(stage, linux.AT_FDCWD, where)
        names = [f"l{i}" for i in range(layers)] + ["state"] + [name for _, name, _ in made]
        sources = [None] * (layers + 1) + [source for source, _, _ in made]
        for name, source, fd in zip(names, sources, trees, strict=True):
            if source is None or os.path.isdir(source):
                os.mkdir(name, 0o755, dir_fd=stage)
            else:
                os.close(
                    os.open(name, os.O_CREAT | os.O_WRONLY | os.O_CLOEXEC, 0o644, dir_fd=stage)
                )
            linux.move_mount(fd, stage, name)
        os.mkdir("root", 0o755, dir_fd=stage)
    finally:
        userns.close_all([stage, *trees])
    upper, work = os.path.basename(paths.upper), os.path.basename(paths.work)
    lower = ":".join(f"{where}/l{i}" for i in range(layers))
    data = f"lowerdir={lower},upperdir={where}/state/{upper},workdir={where}/state/{work},userxattr"
    overlay = _overlay_as_root_inside(data, user_fd, f"{where}/root")
    try:
        linux.move_mount(overlay, linux.AT_FDCWD, f"{where}/root")
    finally:
        os.close(overlay)
    return f"{where}/root"


def _overlay_as_root_inside(data: str, user_fd: int, target: str) -> int:
    """The overlay, mounted by root of a user namespace with the container's map; returns a
    detached copy of it.

    Overlayfs writes to its upper layer with its mounter's credentials: host root is not in
    the idmapped state directory's map (EOVERFLOW; the overlay falls back to read-only), the
    range's root is, as in a fresh start where the container's init mounts it.
    """
    mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    pid = linux.light_fork()
    if pid == 0:
        code = 1
        try:
            mine.close()
            linux.setns(user_fd, linux.CLONE_NEWUSER)
            userns.become_root()
            linux.unshare(linux.CLONE_NEWNS)  # owned by that user namespace: it may mount
            linux.mount("overlay", target, "overlay", 0, data)
            fd = linux.open_tree(target, linux.OPEN_TREE_CLONE | linux.OPEN_TREE_CLOEXEC)
            socket.send_fds(theirs, [b"m"], [fd])
            code = 0
        except BaseException as err:  # noqa: BLE001 (a forked child reports and exits)
            with contextlib.suppress(OSError):
                theirs.sendall(f"e{err}".encode()[:4000])
        finally:
            os._exit(code)
    theirs.close()
    try:
        msg, fds, _, _ = socket.recv_fds(mine, 4096, 1)
    finally:
        mine.close()
        os.waitpid(pid, 0)
    if not fds:
        raise KernelError(f"cannot mount the restored rootfs: {msg[1:].decode(errors='replace')}")
    return fds[0]


def unmount_root(cid: str) -> None:
    """Detach the stage (in the shim-to-be's namespace; the restored tasks have their own)."""
    linux.umount(stage_dir(cid), linux.MNT_DETACH)


def remove_stage_dir(cid: str) -> None:
    """Remove the container's empty mount point on the host, and STAGE_ROOT when no other
    restore has one there (rmdir of a non-empty directory fails: theirs stay)."""
    for path in (stage_dir(cid), STAGE_ROOT):
        with contextlib.suppress(OSError):
            os.rmdir(path)


class NetnsHandoff:
    """The caller's end of the action script: the restored init's pid in, "ok" out."""

    def __init__(self, work: Path):
        self.script = work / "netns.sh"
        self.script.write_text(_SCRIPT.format(work=work))
        self.script.chmod(0o700)
        for name in ("ns.fifo", "ok.fifo"):
            os.mkfifo(work / name, 0o600)
        # Read-write opens never block and keep each FIFO alive; the caller alone holds them,
        # so if it dies the script reads EOF and the restore fails instead of hanging.
        flags = os.O_RDWR | os.O_CLOEXEC
        self.ns_r = os.open(work / "ns.fifo", flags | os.O_NONBLOCK)
        self.ok_w = os.open(work / "ok.fifo", flags)

    def fds(self) -> list[int]:
        """The descriptors a forked child must close."""
        return [self.ns_r, self.ok_w]

    def wait_pid(self, msg_r: int, deadline: float) -> int | None:
        """The restored init's pid once CRIU made its namespaces (None: the shim-to-be
        spoke first, i.e. the restore failed before)."""
        data = b""
        while not data.endswith(b"\n"):
            left = deadline - time.monotonic()
            ready = select.select([self.ns_r, msg_r], [], [], max(left, 0))[0] if left > 0 else []
            if not ready:
                raise KernelError("timed out waiting for CRIU to make the namespaces")
            if self.ns_r not in ready:
                return None
            with contextlib.suppress(BlockingIOError):
                data += os.read(self.ns_r, 64)
        return int(data.strip())

    def answer(self, ok: bool) -> None:
        """Let the script (and CRIU) go on, or fail."""
        os.write(self.ok_w, b"ok\n" if ok else b"no\n")

    def close(self) -> None:
        """Close the caller's ends."""
        userns.close_all(self.fds())


def lend_images(images: Path, gid: int) -> list[tuple[str, int, int]]:
    """Let the restored tasks read the checkpoint (they open their images from inside the
    user namespace: a root-only directory is EACCES).

    They do so first as host uid 0 without capabilities (before CRIU writes their maps),
    then as the range's root: the images, the pre-dumps their `parent` links lead to
    (pre-copy) and the directories those links walk through keep their owner (root) and get
    group `gid` (root inside) with read and search; returns (path, gid, mode) to put back.
    """
    changed: list[tuple[str, int, int]] = []
    seen: set[str] = set()

    def share(path: str) -> None:
        if path in seen:
            return
        seen.add(path)
        st = os.lstat(path)
        extra = stat.S_IRGRP | (stat.S_IXGRP if stat.S_ISDIR(st.st_mode) else 0)
        mode = stat.S_IMODE(st.st_mode)
        if st.st_gid != gid or mode & extra != extra:
            changed.append((path, st.st_gid, mode))
            os.chown(path, -1, gid, follow_symlinks=False)
            os.chmod(path, mode | extra)

    try:
        todo = [os.path.realpath(images)]
        while todo:
            where = todo.pop()
            share(where)
            with os.scandir(where) as entries:
                for entry in entries:
                    if entry.is_file(follow_symlinks=False):
                        share(entry.path)
            link = os.path.join(where, "parent")
            if os.path.islink(link):
                walked = where
                for part in Path(os.readlink(link)).parts:
                    walked = os.path.normpath(os.path.join(walked, part))
                    share(walked)
                todo.append(os.path.realpath(link))
    except BaseException:
        give_back(changed)
        raise
    return changed


def give_back(changed: list[tuple[str, int, int]]) -> None:
    """Put back the groups and modes lend_images changed."""
    for path, gid, mode in reversed(changed):
        with contextlib.suppress(OSError):
            os.chown(path, -1, gid, follow_symlinks=False)
            os.chmod(path, mode)
