"""User namespaces (opt-in): root inside maps to an unprivileged host range.

The parent makes the user namespace through a throwaway child, writes its uid/gid maps and
keeps a descriptor to it. It also makes idmapped, detached mounts of each image layer, so
files that belong to root on the host still look root-owned inside. A helper forked by the shim-to-be joins the cgroup, joins the user
namespace, makes the PID namespace (owned by it) and forks the container's init, which makes
its other namespaces; the shim, a child subreaper, adopts the init when the helper exits.
"""

from __future__ import annotations

import contextlib
import json
import os

from runtime import linux
from runtime.container.rootfs import TREE
from runtime.errors import InvalidSpec, KernelError

DEFAULT_RANGE = (100000, 65536)
SUBID_USER = "berth"


def _parse_range(text: str) -> tuple[int, int]:
    first, _, count = text.strip().partition(":")
    try:
        start, size = int(first), int(count)
    except ValueError:
        raise InvalidSpec(f"user namespace range must be FIRST:COUNT, got {text!r}") from None
    if start < 1 or size < 1:
        raise InvalidSpec(f"user namespace range must map to non-root host ids, got {text!r}")
    return start, size


def host_range(config, environ=os.environ, subuid: str = "/etc/subuid") -> tuple[int, int]:
    """The host uid/gid range for root inside: config extra, env, /etc/subuid `berth`, default."""
    text = config.extra.get("userns_range") or environ.get("BERTH_USERNS_RANGE")
    if text:
        return _parse_range(str(text))
    with contextlib.suppress(OSError), open(subuid) as f:
        for line in f:
            name, _, rest = line.strip().partition(":")
            if name == SUBID_USER and rest:
                return _parse_range(rest)
    return DEFAULT_RANGE


def create(first: int, count: int) -> int:
    """A new user namespace mapping 0..count-1 to first..; returns a descriptor to it."""
    ready_r, ready_w = os.pipe()
    done_r, done_w = os.pipe()
    pid = os.fork()
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
        for name in ("uid_map", "gid_map"):
            try:
                with open(f"/proc/{pid}/{name}", "w") as f:
                    f.write(f"0 {first} {count}\n")
            except OSError as err:
                raise InvalidSpec(
                    f"cannot map root to host ids {first}:{count}: {err.strerror}"
                ) from None
        user_fd = os.open(f"/proc/{pid}/ns/user", os.O_RDONLY | os.O_CLOEXEC)
    finally:
        os.close(ready_r)
        os.close(done_w)
        os.waitpid(pid, 0)
    return user_fd


def idmapped_layers(dirs: list[str], user_fd: int) -> list[int]:
    """Detached copies of each layer directory, idmapped through the user namespace."""
    fds: list[int] = []
    try:
        for path in dirs:
            fd = linux.open_tree(path, linux.OPEN_TREE_CLONE | linux.OPEN_TREE_CLOEXEC)
            fds.append(fd)
            linux.mount_setattr_idmap(fd, user_fd)
    except BaseException:
        close_all(fds)
        raise
    return fds


def close_all(fds) -> None:
    """Close descriptors, ignoring those already gone."""
    for fd in fds:
        with contextlib.suppress(OSError):
            os.close(fd)


def prepare(plan: dict, first: int, count: int) -> None:
    """Make the user namespace and idmapped layers for a child plan (parent side)."""
    user_fd = create(first, count)
    fds = [user_fd]
    try:
        layers = idmapped_layers(plan["rootfs"]["lower"], user_fd)
    except BaseException:
        close_all(fds)
        raise
    if plan.get("fifo"):  # the init, root inside, opens it for writing to wait for `start`
        os.chown(plan["fifo"], first, first)
    # A named volume made for this container belongs to root inside (host uid `first`).
    for m in plan["mounts"]:
        if (
            m["type"] == "volume"
            and os.stat(m["source"]).st_uid == 0
            and not os.listdir(m["source"])
        ):
            os.chown(m["source"], first, first)
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

    def tree(path: str) -> str:
        flags = linux.OPEN_TREE_CLONE | linux.OPEN_TREE_CLOEXEC | linux.AT_RECURSIVE
        return f"{TREE}{linux.open_tree(path, flags)}"

    rootfs = plan["rootfs"]
    # Upper and work must share one mount: an idmapped tree of the directory holding both,
    # so the container's files are stored with the image's own uids, like the layers.
    state = os.path.dirname(rootfs["upper"])
    if os.path.dirname(rootfs["work"]) != state:
        raise KernelError("overlay upper and work directories must share a parent")
    fd = linux.open_tree(state, linux.OPEN_TREE_CLONE | linux.OPEN_TREE_CLOEXEC)
    linux.mount_setattr_idmap(fd, plan["userns"]["user_fd"])
    plan["userns"]["state_fd"] = fd
    os.chdir(rootfs["merged"])
    if plan.get("fifo"):  # `start` opens it from the host; the init reaches it by descriptor
        plan["fifo"] = f"/proc/self/fd/{os.open(plan['fifo'], os.O_PATH | os.O_CLOEXEC)}"
    plan["etc_files"] = {name: tree(src) for name, src in plan["etc_files"].items()}
    for m in plan["mounts"]:
        if m["type"] in ("bind", "volume"):
            m["is_dir"] = os.path.isdir(m["source"])
            m["source"] = tree(m["source"])


def enter(plan: dict) -> None:
    """As host root: join the cgroup, pin paths, then join the user namespace as its root."""
    for path in plan["procs_files"]:
        with open(path, "w") as f:
            f.write("0")
    plan["procs_files"] = []  # the init inherits the cgroup; it could not write there now
    pin_paths(plan)
    linux.setns(plan["userns"]["user_fd"], linux.CLONE_NEWUSER)
    os.setgroups([])
    os.setresgid(0, 0, 0)
    os.setresuid(0, 0, 0)


def fork_init(plan: dict, child_main) -> int:
    """Fork the helper that makes the namespaces and the init; returns the init's host pid."""
    # The init's parent (the helper) exits at once: this process adopts it and can wait for it.
    linux.prctl(linux.PR_SET_CHILD_SUBREAPER, 1)
    pid_r, pid_w = os.pipe()
    helper = os.fork()
    if helper == 0:
        code = 125
        try:
            os.close(pid_r)
            enter(plan)
            # Made now, the PID namespace is owned by the user namespace (so /proc mounts).
            linux.unshare(linux.CLONE_NEWPID)
            pid = os.fork()
            if pid == 0:
                child_main(plan)  # never returns
            os.write(pid_w, str(pid).encode())
            code = 0
        except BaseException as err:
            with contextlib.suppress(OSError):
                msg = {"error": f"user namespace setup: {err}", "code": 125}
                os.write(plan["msg_fd"], (json.dumps(msg) + "\n").encode())
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
