"""Build the container's root filesystem inside its new mount namespace (child side).

Order follows the kernel's needs: make `/` private so nothing propagates back to the host,
mount the overlay, then /proc, /dev, /sys, /etc files and user mounts (targets resolved
inside the root), mask and lock /proc and /sys, then pivot_root and detach the old root.
"""

from __future__ import annotations

import fcntl
import os
import socket
import stat
import struct
import termios

from runtime import linux
from runtime.container.safepath import fd_path, open_in_root
from runtime.errors import InvalidSpec, KernelError

# Docker's masked and read-only paths (moby daemon/pkg/oci/defaults.go).
MASKED_PATHS = (
    "/proc/acpi",
    "/proc/asound",
    "/proc/interrupts",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
)
READONLY_PATHS = ("/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger")

# (name, major, minor): the standard device set on a fresh /dev tmpfs.
STANDARD_DEVICES = (
    ("null", 1, 3),
    ("zero", 1, 5),
    ("full", 1, 7),
    ("random", 1, 8),
    ("urandom", 1, 9),
    ("tty", 5, 0),
)
# ioctls of the pty multiplexer (asm-generic/ioctls.h), which the termios module lacks.
TIOCGPTN, TIOCSPTLCK = 0x80045430, 0x40045431
_NOSUID_NODEV_NOEXEC = linux.MS_NOSUID | linux.MS_NODEV | linux.MS_NOEXEC
TREE = "tree:"  # a bind source given as a detached mount's descriptor (runtime.container.userns)


def _mount_at(
    root_fd: int, target: str, source, fstype, flags: int, data=None, create: str = "dir"
) -> None:
    fd = open_in_root(root_fd, target, create=create)
    try:
        linux.mount(source, fd_path(fd), fstype, flags, data)
    except KernelError as err:
        raise KernelError(
            f"mount {fstype or 'bind'} on {target}: {err.__cause__.strerror}"
        ) from err
    finally:
        os.close(fd)


def _attach_tree(root_fd: int, target: str, source: str, create: str) -> None:
    # A detached bind made on the host side (user namespaces): attach it where it belongs.
    fd = open_in_root(root_fd, target, create=create)
    try:
        linux.move_mount(int(source[len(TREE) :]), fd, "")
    finally:
        os.close(fd)


def _remount_ro(root_fd: int, target: str, extra: int = 0) -> None:
    fd = open_in_root(root_fd, target)
    try:
        linux.mount(fd_path(fd), fd_path(fd), None, linux.MS_BIND | linux.MS_REC)
    finally:
        os.close(fd)
    _remount(root_fd, target, linux.MS_RDONLY | extra)


def _remount(root_fd: int, target: str, flags: int) -> None:
    # A descriptor taken before a mount still points below it: open the path again so the
    # remount reaches the new mount on top.
    fd = open_in_root(root_fd, target)
    try:
        linux.mount(None, fd_path(fd), None, linux.MS_BIND | linux.MS_REMOUNT | flags)
    finally:
        os.close(fd)


def _mount_dev(root_fd: int, plan: dict) -> None:
    _mount_at(
        root_fd,
        "/dev",
        "tmpfs",
        "tmpfs",
        linux.MS_NOSUID | linux.MS_STRICTATIME,
        "mode=755,size=65536k",
    )
    dev_fd = open_in_root(root_fd, "/dev")
    dev = os.open(fd_path(dev_fd), os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    os.close(dev_fd)
    try:
        copies = plan.get("device_files") or {}
        for name, major, minor in STANDARD_DEVICES + tuple(plan["devices"]):
            if name in copies:  # a --device node the parent made, owned by root inside
                _attach_device(dev, name, copies[name])
                continue
            if plan.get("userns"):
                # mknod is refused in a user namespace: bind the host's node instead.
                _bind_host_device(dev, name, major, minor)
                continue
            os.mknod(name, 0o666 | stat.S_IFCHR, os.makedev(major, minor), dir_fd=dev)
            os.chmod(name, 0o666, dir_fd=dev)
        for link, target in (
            ("fd", "/proc/self/fd"),
            ("stdin", "/proc/self/fd/0"),
            ("stdout", "/proc/self/fd/1"),
            ("stderr", "/proc/self/fd/2"),
            ("ptmx", "pts/ptmx"),
            ("core", "/proc/kcore"),
        ):
            os.symlink(target, link, dir_fd=dev)
        for sub in ("pts", "shm", "mqueue"):
            os.mkdir(sub, 0o755, dir_fd=dev)
        if plan["tty"]:
            os.close(os.open("console", os.O_CREAT | os.O_WRONLY | os.O_CLOEXEC, 0o620, dir_fd=dev))
    finally:
        os.close(dev)
    _mount_at(
        root_fd,
        "/dev/pts",
        "devpts",
        "devpts",
        linux.MS_NOSUID | linux.MS_NOEXEC,
        "newinstance,ptmxmode=0666,mode=0620,gid=5",
    )
    _mount_shm(root_fd)
    _mount_at(root_fd, "/dev/mqueue", "mqueue", "mqueue", _NOSUID_NODEV_NOEXEC)
    if plan["tty"]:
        slave_path = _make_pty(root_fd, plan["pty_peer"])
        if plan.get("userns"):
            # The host path runs through directories root inside cannot search: bind the
            # pty by a descriptor opened from the container's root instead.
            pts = open_in_root(root_fd, "/dev/pts/" + slave_path.rpartition("/")[2])
            try:
                _mount_at(root_fd, "/dev/console", fd_path(pts), None, linux.MS_BIND, create="file")
            finally:
                os.close(pts)
        else:
            _mount_at(root_fd, "/dev/console", slave_path, None, linux.MS_BIND, create="file")


def _mount_shm(root_fd: int) -> None:
    """/dev/shm: a directory of the /dev tmpfs, bound onto itself as nosuid, nodev, noexec.

    Not a tmpfs of its own: every superblock costs each memory cgroup on the host a share of
    the kernel's shrinker map (see _mask_directory). /dev's tmpfs has the 64 MiB that /dev/shm
    had, and device nodes and links take none of it, so `df /dev/shm` shows what it showed.
    """
    fd = open_in_root(root_fd, "/dev/shm")
    try:
        os.chmod(fd_path(fd), 0o1777)
        linux.mount(fd_path(fd), fd_path(fd), None, linux.MS_BIND)
    finally:
        os.close(fd)
    _remount(root_fd, "/dev/shm", _NOSUID_NODEV_NOEXEC)


def _attach_device(dev: int, name: str, source: str) -> None:
    os.close(os.open(name, os.O_CREAT | os.O_WRONLY | os.O_CLOEXEC, 0o666, dir_fd=dev))
    target = os.open(name, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dev)
    try:
        linux.move_mount(int(source[len(TREE) :]), target, "")
    finally:
        os.close(target)


def _bind_host_device(dev: int, name: str, major: int, minor: int) -> None:
    host = _host_device_path(name, major, minor)
    os.close(os.open(name, os.O_CREAT | os.O_WRONLY | os.O_CLOEXEC, 0o666, dir_fd=dev))
    target = os.open(name, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dev)
    try:
        linux.mount(host, fd_path(target), None, linux.MS_BIND)
    finally:
        os.close(target)


def _host_device_path(name: str, major: int, minor: int) -> str:
    # The host's node of the same name, checked to be that very device (not a look-alike).
    path = f"/dev/{name}"
    try:
        st = os.stat(path, follow_symlinks=False)
    except OSError:
        st = None
    if st is None or not stat.S_ISCHR(st.st_mode) or st.st_rdev != os.makedev(major, minor):
        raise KernelError(f"host device {path} ({major}:{minor}) not found")
    return path


def _make_pty(root_fd: int, peer: int) -> str:
    """Open a pty in the container's devpts, hand its master to the shim, make the slave
    our stdio and controlling terminal; returns the slave's path (for /dev/console)."""
    ptmx = open_in_root(root_fd, "/dev/pts/ptmx")
    try:
        master = os.open(fd_path(ptmx), os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
    finally:
        os.close(ptmx)
    fcntl.ioctl(master, TIOCSPTLCK, struct.pack("i", 0))
    number = struct.unpack("I", fcntl.ioctl(master, TIOCGPTN, b"\0" * 4))[0]
    pts = open_in_root(root_fd, f"/dev/pts/{number}")
    try:
        slave_path = os.readlink(fd_path(pts))
        slave = os.open(fd_path(pts), os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
    finally:
        os.close(pts)
    sock = socket.socket(fileno=peer)
    try:
        socket.send_fds(sock, [b"m"], [master])
    finally:
        sock.detach()
        os.close(peer)
    os.close(master)
    for target in (0, 1, 2):
        os.dup2(slave, target)
    os.close(slave)
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)
    return slave_path


def _mount_sys(root_fd: int, plan: dict) -> None:
    flags = _NOSUID_NODEV_NOEXEC | (0 if plan["privileged"] else linux.MS_RDONLY)
    try:
        _mount_at(root_fd, "/sys", "sysfs", "sysfs", flags)
    except KernelError:
        # sysfs belongs to the network namespace: sharing the host's, bind the host's /sys.
        _mount_at(root_fd, "/sys", "/sys", None, linux.MS_BIND | linux.MS_REC)
        if not plan["privileged"]:
            _remount_ro(root_fd, "/sys", _NOSUID_NODEV_NOEXEC)


def _mask(root_fd: int) -> None:
    empty = None  # the first masked directory: where the empty tmpfs is
    for path in MASKED_PATHS:
        try:
            fd = open_in_root(root_fd, path)
        except InvalidSpec:
            continue  # not present on this kernel
        try:
            if stat.S_ISDIR(os.fstat(fd).st_mode):
                _mask_directory(root_fd, fd, path, empty)
                empty = empty or path
            else:
                null = open_in_root(root_fd, "/dev/null")
                try:
                    # Bind only what is truly our char device, never a planted symlink or file.
                    if not stat.S_ISCHR(os.fstat(null).st_mode):
                        raise KernelError("/dev/null in the container is not a character device")
                    linux.mount(fd_path(null), fd_path(fd), None, linux.MS_BIND)
                finally:
                    os.close(null)
        finally:
            os.close(fd)
    for path in READONLY_PATHS:
        try:
            _remount_ro(root_fd, path, _NOSUID_NODEV_NOEXEC)
        except InvalidSpec:
            continue


def _mask_directory(root_fd: int, fd: int, path: str, empty: str | None) -> None:
    """Hide a directory under a read-only, empty tmpfs: one tmpfs for all of them.

    Each tmpfs is a superblock, and every superblock takes a memcg-aware shrinker id; the
    kernel keeps, for every memory cgroup, room for the highest id in use (about 1 KB per 64
    ids). One tmpfs bound to each masked directory, instead of one tmpfs each, keeps that
    down at 1,000 containers (issue 19).
    """
    if empty is None:
        flags = linux.MS_RDONLY | _NOSUID_NODEV_NOEXEC
        linux.mount("tmpfs", fd_path(fd), "tmpfs", flags, "size=0")
        return
    source = open_in_root(root_fd, empty)  # the tmpfs on top, not the directory below it
    try:
        linux.mount(fd_path(source), fd_path(fd), None, linux.MS_BIND)
    finally:
        os.close(source)
    # A bind keeps the source's flags; set them again so the mask never depends on that.
    _remount(root_fd, path, linux.MS_RDONLY | _NOSUID_NODEV_NOEXEC)


def _user_mount(root_fd: int, m: dict) -> None:
    flags = linux.MS_RDONLY if m["read_only"] else 0
    if m["type"] == "tmpfs":
        _mount_at(
            root_fd,
            m["target"],
            "tmpfs",
            "tmpfs",
            flags | linux.MS_NOSUID | linux.MS_NODEV,
            m["data"] or None,
        )
        return
    if m["source"].startswith(TREE):
        _attach_tree(root_fd, m["target"], m["source"], "dir" if m["is_dir"] else "file")
    else:
        create = "dir" if os.path.isdir(m["source"]) else "file"
        fd = open_in_root(root_fd, m["target"], create=create)
        try:
            linux.mount(m["source"], fd_path(fd), None, linux.MS_BIND | linux.MS_REC)
        finally:
            os.close(fd)
    if m["read_only"]:
        _remount(root_fd, m["target"], linux.MS_RDONLY)


def _mount_idmapped_overlay(plan: dict) -> str:
    """Overlay on idmapped layers, staged on a private tmpfs; returns the root's path.

    The layers and the state directory are detached mounts runtime.container.userns made
    on the host side; they are attached here, inside the new mount namespace.
    """
    rootfs = plan["rootfs"]
    stage = linux.fsmount_new("tmpfs", {"mode": "0755", "size": "64k"})
    linux.move_mount(stage, linux.AT_FDCWD, "")  # onto the working directory: merged
    os.mkdir("root", 0o755, dir_fd=stage)
    lower = []
    for i, fd in enumerate(plan["userns"]["layer_fds"]):
        os.mkdir(f"l{i}", 0o755, dir_fd=stage)
        linux.move_mount(fd, stage, f"l{i}")
        lower.append(f"/proc/self/fd/{stage}/l{i}")
    os.mkdir("state", 0o755, dir_fd=stage)
    linux.move_mount(plan["userns"]["state_fd"], stage, "state")
    state = f"/proc/self/fd/{stage}/state"
    upper, work = (os.path.basename(rootfs[k]) for k in ("upper", "work"))
    merged = f"/proc/self/fd/{stage}/root"
    data = f"lowerdir={':'.join(lower)},upperdir={state}/{upper},workdir={state}/{work},userxattr"
    linux.mount("overlay", merged, "overlay", 0, data)
    return merged


def setup_rootfs(plan: dict) -> None:
    """Mount everything the container sees and pivot into it (runs in the child)."""
    linux.mount(None, "/", None, linux.MS_REC | linux.MS_PRIVATE)
    rootfs = plan["rootfs"]
    if plan.get("userns"):
        merged = _mount_idmapped_overlay(plan)
    else:
        merged = rootfs["merged"]
        data = (
            f"lowerdir={':'.join(rootfs['lower'])},upperdir={rootfs['upper']},"
            f"workdir={rootfs['work']}"
        )
        linux.mount("overlay", merged, "overlay", 0, data)
    root_fd = os.open(merged, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        _mount_at(root_fd, "/proc", "proc", "proc", _NOSUID_NODEV_NOEXEC)
        if plan["privileged"]:
            _mount_at(root_fd, "/dev", "/dev", None, linux.MS_BIND | linux.MS_REC)
        else:
            _mount_dev(root_fd, plan)
        _mount_sys(root_fd, plan)
        for name, source in plan["etc_files"].items():
            if source.startswith(TREE):
                _attach_tree(root_fd, f"/etc/{name}", source, "file")
            else:
                _mount_at(root_fd, f"/etc/{name}", source, None, linux.MS_BIND, create="file")
        for m in plan["mounts"]:
            _user_mount(root_fd, m)
        if not plan["privileged"]:
            _mask(root_fd)
        if rootfs["read_only"]:
            linux.mount(None, merged, None, linux.MS_REMOUNT | linux.MS_BIND | linux.MS_RDONLY)
    finally:
        os.close(root_fd)
    os.chdir(merged)
    # pivot_root(".", ".") stacks the old root on top of the new one; detaching it leaves
    # only the container's tree, with no path back to the host's.
    linux.pivot_root(".", ".")
    linux.umount(".", linux.MNT_DETACH)
    os.chdir("/")
