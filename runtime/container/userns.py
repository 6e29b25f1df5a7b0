"""User namespaces, on by default: root inside maps to an unprivileged host range.

Ranges (runtime.container.userns_ranges): one per key, 65536 ids each, cut from a pool
(config `userns_range`, BERTH_USERNS_RANGE, a `berth` line of /etc/subuid, else 100000 and
up). The key is the label
`io.berth.userns` (the host agent sets it to the container's team: one range per team, so a
team's containers share its volumes) or "default" (every container made without one, as
Docker's userns-remap does). A container that joins another's namespaces (network or pid
`container:<id>`) joins its user namespace too. The allocation is kept in `userns.json`
under the state root, so a team's range never changes.

The shim-to-be clones the container's init straight into a new user and PID namespace
(clone_init: no throwaway child, no helper), writes its uid/gid maps, idmaps detached mounts
of each image layer and of the upper layer's directory (made beforehand, as host root), so
files that belong to root on the host still look root-owned inside and the container's own
files are stored with the image's uids, and moves the init into its cgroup. Named volumes are
shifted into the range on first use (their root directory still owned by host root); bind
mounts (each one allowed by a permission and a path) are idmapped, so their host files keep
the owners they have without a user namespace; `--device` nodes are copied into the
container's state directory, owned by the range's root. A container that joins another's
user namespace has it opened in the caller instead (prepare without `deferred`), and a helper
forked by the shim-to-be joins the cgroup, the user namespace and the PID namespace and forks
the init; the shim, a child subreaper, adopts the init when the helper exits.
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
import threading

from runtime import linux
from runtime.container.rootfs import TREE
from runtime.container.userns_ranges import (  # noqa: F401 (callers and tests use userns.*)
    DEFAULT_KEY,
    DEFAULT_POOL,
    LABEL,
    RANGE_SIZE,
    SUBID_USER,
    allocate,
    default_mode,
    legacy_range,
    pool,
    resolve,
)
from runtime.errors import InvalidSpec, KernelError


def create(first: int, count: int) -> int:
    """A new user namespace mapping 0..count-1 to first..; returns a descriptor to it."""
    ready_r, ready_w = os.pipe()
    done_r, done_w = os.pipe()
    pid = linux.light_fork()
    if pid == 0:
        try:
            os.close(ready_r)
            os.close(done_w)
            linux.unshare(linux.CLONE_NEWUSER)
            os.write(ready_w, b"1")
            os.read(done_r, 1)  # stay alive until the parent holds descriptors
        finally:
            os._exit(0)
    os.close(ready_w)
    os.close(done_r)
    try:
        if os.read(ready_r, 1) != b"1":
            raise KernelError("could not create a user namespace")
        user_fd = map_ids(pid, first, count)
    finally:
        os.close(ready_r)
        os.close(done_w)
        os.waitpid(pid, 0)
    return user_fd


_KEPT: dict[tuple[int, int], int] = {}  # (first, count) -> a user namespace this process keeps
_KEPT_LOCK = threading.Lock()


def kept(first: int, count: int) -> int:
    """A descriptor (the caller's to close) to a user namespace mapping root to first..: made
    once per process and range, then shared. Its only use is the idmap of a restore's mounts,
    which any namespace with that map gives; making one is a fork of the whole agent (about
    9 ms here, inside a migration's freeze)."""
    with _KEPT_LOCK:
        fd = _KEPT.get((first, count))
        if fd is None:
            fd = _KEPT[(first, count)] = create(first, count)
        return os.dup(fd)  # non-inheritable, as the kept one


def idmapped_layers(dirs: list[str], user_fd: int) -> list[int]:
    """Detached copies of each layer directory, idmapped through the user namespace."""
    fds = detached_layers(dirs)
    try:
        for fd in fds:
            linux.mount_setattr_idmap(fd, user_fd)
    except BaseException:
        close_all(fds)
        raise
    return fds


def detached_layers(dirs: list[str]) -> list[int]:
    """Detached copies of each layer directory (not idmapped yet)."""
    fds: list[int] = []
    try:
        for path in dirs:
            fds.append(linux.open_tree(path, linux.OPEN_TREE_CLONE | linux.OPEN_TREE_CLOEXEC))
    except BaseException:
        close_all(fds)
        raise
    return fds


def map_ids(pid: int, first: int, count: int) -> int:
    """Write the uid/gid maps of the new user namespace of `pid`; returns a descriptor to it."""
    for name in ("uid_map", "gid_map"):
        try:
            with open(f"/proc/{pid}/{name}", "w") as f:
                f.write(f"0 {first} {count}\n")
        except OSError as err:
            raise InvalidSpec(
                f"cannot map root to host ids {first}:{count}: {err.strerror}"
            ) from None
    return os.open(f"/proc/{pid}/ns/user", os.O_RDONLY | os.O_CLOEXEC)


def close_all(fds) -> None:
    """Close descriptors, ignoring those already gone."""
    for fd in fds:
        with contextlib.suppress(OSError):
            os.close(fd)


def join(pid: int) -> int:
    """A descriptor to the user namespace of process `pid` (a container joined)."""
    try:
        return os.open(f"/proc/{pid}/ns/user", os.O_RDONLY | os.O_CLOEXEC)
    except OSError as err:
        raise KernelError(f"cannot open the user namespace of pid {pid}: {err.strerror}") from None


def _shift(path: str, first: int, count: int) -> None:
    st = os.lstat(path)
    uid, gid = st.st_uid, st.st_gid
    if first <= uid < first + count and first <= gid < first + count:
        return  # shifted already (a second hard link, or a shift killed half-way)
    new_uid = first + uid if uid < count else uid
    new_gid = first + gid if gid < count else gid
    os.chown(path, new_uid, new_gid, follow_symlinks=False)
    if stat.S_ISREG(st.st_mode) and st.st_mode & (stat.S_ISUID | stat.S_ISGID):
        os.chmod(path, stat.S_IMODE(st.st_mode))  # chown cleared them; they stay inside the range


def shift_volume(path: str, first: int, count: int) -> None:
    """Shift a named volume's files into the range on first use (its root still host root's).

    The root directory is shifted last: as long as it belongs to host root the volume is not
    done, and the next start resumes (files already in the range are skipped). A volume that
    belongs to another range (another team's) is left as it is.
    """
    st = os.lstat(path)
    if st.st_uid != 0 or st.st_gid != 0:
        return
    for dirpath, dirnames, filenames in os.walk(path, topdown=False):
        for name in dirnames + filenames:
            _shift(os.path.join(dirpath, name), first, count)
    _shift(path, first, count)


def copy_devices(nodes, directory, first: int) -> dict[str, str]:
    """`--device` nodes made again in `directory`, owned by root inside (host uid `first`).

    Root inside is not the owner of the host's node (nor in its group), so a bind of the
    host's node would be unusable; the cgroup's device rules still say what may be opened.
    """
    directory.mkdir(mode=0o700, exist_ok=True)
    made = {}
    for name, major, minor in nodes:
        path = directory / name
        path.unlink(missing_ok=True)
        os.mknod(path, 0o660 | stat.S_IFCHR, os.makedev(major, minor))
        os.chown(path, first, first)
        os.chmod(path, 0o660)  # not the umask's
        made[name] = str(path)
    return made


def prepare(
    plan: dict,
    first: int,
    count: int,
    *,
    join_pid: int | None = None,
    device_dir=None,
    deferred: bool = False,
) -> None:
    """Make (or join) the user namespace and idmapped layers for a child plan (parent side).

    With `deferred` (and nothing to join) no namespace is made here: fork_init clones the
    init into a new one (clone_init) and maps it then (no throwaway child, no helper); the
    layers are detached copies, idmapped once the namespace exists.
    """
    if deferred and not join_pid:
        user_fd = None
        layers = detached_layers(plan["rootfs"]["lower"])
    else:
        user_fd = join(join_pid) if join_pid else create(first, count)
        try:
            layers = idmapped_layers(plan["rootfs"]["lower"], user_fd)
        except BaseException:
            close_all([user_fd])
            raise
    if plan.get("fifo"):  # the init, root inside, opens it for writing to wait for `start`
        os.chown(plan["fifo"], first, first)
    for m in plan["mounts"]:
        if m["type"] == "volume":
            shift_volume(m["source"], first, count)
    if plan["devices"] and device_dir is not None:
        plan["device_files"] = copy_devices(plan["devices"], device_dir, first)
    plan["userns"] = {
        "user_fd": user_fd,
        "layer_fds": layers,
        "first": first,
        "count": count,
    }


def pin_paths(plan: dict) -> None:
    """Reach the host paths the container needs while still host root (run by the helper).

    Inside the user namespace, root cannot traverse the host's private state directories.
    The mount point becomes the working directory (unshare carries it into the new mount
    namespace); bind sources become detached mount trees, attached later with move_mount.
    """
    pin_trees(plan)
    idmap_pinned(plan, plan["userns"]["user_fd"])
    os.chdir(plan["rootfs"]["merged"])


def pin_trees(plan: dict) -> list[int]:
    """The detached trees of pin_paths, not idmapped yet; returns every descriptor made."""

    def tree(path: str) -> str:
        flags = linux.OPEN_TREE_CLONE | linux.OPEN_TREE_CLOEXEC | linux.AT_RECURSIVE
        fd = linux.open_tree(path, flags)
        made.append(fd)
        return f"{TREE}{fd}"

    made: list[int] = []
    rootfs = plan["rootfs"]
    # Upper and work must share one mount: an idmapped tree of the directory holding both,
    # so the container's files are stored with the image's own uids, like the layers.
    state = os.path.dirname(rootfs["upper"])
    if os.path.dirname(rootfs["work"]) != state:
        raise KernelError("overlay upper and work directories must share a parent")
    try:
        fd = linux.open_tree(state, linux.OPEN_TREE_CLONE | linux.OPEN_TREE_CLOEXEC)
        made.append(fd)
        plan["userns"]["state_fd"] = fd
        if plan.get("fifo"):  # `start` opens it from the host; the init reaches it by descriptor
            fifo = os.open(plan["fifo"], os.O_PATH | os.O_CLOEXEC)
            made.append(fifo)
            plan["fifo"] = f"/proc/self/fd/{fifo}"
        plan["etc_files"] = {name: tree(src) for name, src in plan["etc_files"].items()}
        if plan.get("device_files"):
            plan["device_files"] = {name: tree(src) for name, src in plan["device_files"].items()}
        for m in plan["mounts"]:
            if m["type"] in ("bind", "volume"):
                m["is_dir"] = os.path.isdir(m["source"])
                m["source"] = tree(m["source"])
    except BaseException:
        close_all(made)
        raise
    return made


def idmap_pinned(plan: dict, user_fd: int) -> None:
    """Idmap the state directory's tree and the binds' trees through the user namespace."""
    linux.mount_setattr_idmap(plan["userns"]["state_fd"], user_fd)
    for m in plan["mounts"]:
        if m["type"] == "bind":
            _idmap_bind(m["source"], user_fd)


def _idmap_bind(source: str, user_fd: int) -> None:
    """Show a bind's host files with their host owners (root's as root's inside).

    The bind was allowed to this container (a permission and a path the admin chose): it
    should work as it would without a user namespace. Root inside still holds no capability
    on the host, so only what the bind exposes is reached. A file system that cannot be
    idmapped keeps the plain bind (host root's files then show as nobody).
    """
    # e.g. a network or pseudo file system without idmapped mounts: the plain bind stays.
    with contextlib.suppress(KernelError):
        linux.mount_setattr_idmap(int(source[len(TREE) :]), user_fd)


def enter(plan: dict) -> None:
    """As host root: join the cgroup, pin paths, then join the user namespace as its root."""
    for path in plan["procs_files"]:
        with open(path, "w") as f:
            f.write("0")
    plan["procs_files"] = []  # the init inherits the cgroup; it could not write there now
    pin_paths(plan)
    linux.setns(plan["userns"]["user_fd"], linux.CLONE_NEWUSER)
    become_root()


def become_root() -> None:
    """Root of the user namespace this process is in (its maps written)."""
    os.setgroups([])
    os.setresgid(0, 0, 0)
    os.setresuid(0, 0, 0)


def _report(plan: dict, err: BaseException) -> None:
    msg = {"error": f"user namespace setup: {err}", "code": 125}
    if isinstance(err, InvalidSpec):
        msg["kind"] = "InvalidSpec"
    with contextlib.suppress(OSError):
        os.write(plan["msg_fd"], (json.dumps(msg) + "\n").encode())


def fork_init(plan: dict, child_main, pid_fd: int | None = None) -> int:
    """Fork the helper that makes the namespaces and the init; returns the init's host pid.

    A deferred plan (a namespace of its own, nothing joined) has no helper: the init is
    cloned straight into its new user and PID namespaces (clone_init).
    """
    # The init's parent (the helper) exits at once: this process adopts it and can wait for it.
    linux.prctl(linux.PR_SET_CHILD_SUBREAPER, 1)
    if plan["userns"]["user_fd"] is None and pid_fd is None:
        return clone_init(plan, child_main)
    pid_r, pid_w = os.pipe()
    helper = os.fork()
    if helper == 0:
        code = 125
        try:
            os.close(pid_r)
            enter(plan)
            if pid_fd is not None:  # a joined container's (owned by the namespace joined)
                linux.setns(pid_fd, linux.CLONE_NEWPID)
            else:  # made now, it is owned by the user namespace (so /proc mounts)
                linux.unshare(linux.CLONE_NEWPID)
            pid = os.fork()
            if pid == 0:
                child_main(plan)  # never returns
            os.write(pid_w, str(pid).encode())
            code = 0
        except BaseException as err:
            _report(plan, err)
        finally:
            os._exit(code)
    os.close(pid_w)
    try:
        data = os.read(pid_r, 32)
    finally:
        os.close(pid_r)
        os.waitpid(helper, 0)
    if not data:
        raise KernelError("the user namespace helper failed")
    return int(data)


def clone_init(plan: dict, child_main) -> int:
    """Clone the init into a new user and PID namespace, map it and idmap its trees from here.

    One process instead of a throwaway child and a helper: the caller (host root) pins the
    host paths and opens the cgroup's procs files first, writes the maps, idmaps the layers,
    the state directory and the binds, then lets the init go on: it joins its cgroup through
    those descriptors and becomes root of its namespace.
    """
    owned = pin_trees(plan)  # closed here once the init holds them
    joins: list[int] = []
    go_r = go_w = here = pid = None
    try:
        # Opened as host root: the init writes itself into them once it runs (a cgroup.procs
        # write is judged by the opener's credentials) while this process execs the shim.
        for path in plan["procs_files"]:
            joins.append(os.open(path, os.O_WRONLY | os.O_CLOEXEC))
        plan["procs_files"] = []
        go_r, go_w = os.pipe()
        here = os.open(".", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        # The mount point, carried into the init as its working directory (root inside
        # cannot traverse the host's state directories to reach it).
        os.chdir(plan["rootfs"]["merged"])
        pid = linux.clone_plain(linux.CLONE_NEWUSER | linux.CLONE_NEWPID)
        if pid == 0:
            _cloned(plan, child_main, go_r, [go_w, here], joins)  # never returns
        os.fchdir(here)
        _map_child(plan, pid)
        os.write(go_w, b"1")
    except BaseException as err:
        _report(plan, err)
        if pid is not None:  # the init reads EOF and exits
            os.close(go_w)
            go_w = None
            os.waitpid(pid, 0)
        raise
    finally:
        close_all([fd for fd in (*owned, *joins, go_r, go_w, here) if fd is not None])
    return pid


def _cloned(plan: dict, child_main, go_r: int, parents: list[int], joins: list[int]) -> None:
    """The init, just cloned: wait for its maps, join its cgroup, become root, set up, exec."""
    try:
        close_all(parents)  # the pipe's write end, and the parent's own working directory
        if os.read(go_r, 1) != b"1":
            raise KernelError("the parent could not set up the user namespace")
        os.close(go_r)
        for fd in joins:
            os.write(fd, b"0")
            os.close(fd)
        become_root()
        child_main(plan)  # never returns
    except BaseException as err:
        _report(plan, err)
    finally:
        os._exit(125)


def _map_child(plan: dict, pid: int) -> None:
    u = plan["userns"]
    user_fd = map_ids(pid, u["first"], u["count"])
    try:
        for fd in u["layer_fds"]:
            linux.mount_setattr_idmap(fd, user_fd)
        idmap_pinned(plan, user_fd)
    finally:
        os.close(user_fd)  # the idmapped mounts and the init keep the namespace
