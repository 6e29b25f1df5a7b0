"""Thin ctypes wrappers for the Linux system calls Python 3.11's `os` module lacks."""

import ctypes
import ctypes.util
import os
import signal

from runtime.errors import KernelError

_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)

# Namespace flags (linux/sched.h).
CLONE_NEWNS = 0x00020000
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000

NAMESPACE_FLAGS = {
    "mnt": CLONE_NEWNS,
    "uts": CLONE_NEWUTS,
    "ipc": CLONE_NEWIPC,
    "user": CLONE_NEWUSER,
    "pid": CLONE_NEWPID,
    "net": CLONE_NEWNET,
    "cgroup": CLONE_NEWCGROUP,
}

# Mount flags (linux/mount.h).
MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_REMOUNT = 32
MS_BIND = 4096
MS_MOVE = 8192
MS_REC = 16384
MS_PRIVATE = 1 << 18
MS_SLAVE = 1 << 19
MS_STRICTATIME = 1 << 24
MNT_DETACH = 2

# prctl options (linux/prctl.h).
PR_SET_PDEATHSIG = 1
PR_SET_DUMPABLE = 4
PR_SET_NAME = 15
PR_CAPBSET_DROP = 24
PR_SET_CHILD_SUBREAPER = 36
PR_SET_NO_NEW_PRIVS = 38
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_CLEAR_ALL = 4

_libc.mount.argtypes = [
    ctypes.c_char_p,
    ctypes.c_char_p,
    ctypes.c_char_p,
    ctypes.c_ulong,
    ctypes.c_char_p,
]
_libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]
_libc.unshare.argtypes = [ctypes.c_int]
_libc.setns.argtypes = [ctypes.c_int, ctypes.c_int]
_libc.prctl.argtypes = [
    ctypes.c_int,
    ctypes.c_ulong,
    ctypes.c_ulong,
    ctypes.c_ulong,
    ctypes.c_ulong,
]
_libc.sethostname.argtypes = [ctypes.c_char_p, ctypes.c_size_t]
_libc.syscall.restype = ctypes.c_long

_SYS_PIVOT_ROOT = 155  # x86_64
_SYS_CAPSET = 126


def _check(result: int, what: str) -> int:
    if result < 0:
        err = ctypes.get_errno()
        raise KernelError(f"{what}: {os.strerror(err)}") from OSError(err, os.strerror(err))
    return result


def _b(value):
    if value is None:
        return None
    return os.fsencode(value)


def mount(source, target, fstype=None, flags: int = 0, data=None) -> None:
    """mount(2); raises KernelError naming the target on failure."""
    _check(_libc.mount(_b(source), _b(target), _b(fstype), flags, _b(data)), f"mount {target}")


def umount(target, flags: int = 0) -> None:
    """umount2(2)."""
    _check(_libc.umount2(_b(target), flags), f"umount {target}")


def unshare(flags: int) -> None:
    """unshare(2): move this process into new namespaces."""
    _check(_libc.unshare(flags), "unshare")


def setns(fd: int, nstype: int = 0) -> None:
    """setns(2): join the namespace behind `fd`."""
    _check(_libc.setns(fd, nstype), "setns")


def pivot_root(new_root, put_old) -> None:
    """pivot_root(2), which glibc does not wrap."""
    _check(_libc.syscall(_SYS_PIVOT_ROOT, _b(new_root), _b(put_old)), "pivot_root")


def sethostname(name: str) -> None:
    """sethostname(2) in the current UTS namespace."""
    raw = name.encode()
    _check(_libc.sethostname(raw, len(raw)), "sethostname")


def prctl(option: int, arg2: int = 0, arg3: int = 0, arg4: int = 0, arg5: int = 0) -> int:
    """prctl(2)."""
    return _check(_libc.prctl(option, arg2, arg3, arg4, arg5), f"prctl({option})")


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [
        ("effective", ctypes.c_uint32),
        ("permitted", ctypes.c_uint32),
        ("inheritable", ctypes.c_uint32),
    ]


def capset(effective: int, permitted: int, inheritable: int = 0) -> None:
    """capset(2) with 64-bit masks (capability version 3)."""
    header = _CapHeader(0x20080522, 0)
    data = (_CapData * 2)()
    for i in range(2):
        shift = 32 * i
        data[i].effective = (effective >> shift) & 0xFFFFFFFF
        data[i].permitted = (permitted >> shift) & 0xFFFFFFFF
        data[i].inheritable = (inheritable >> shift) & 0xFFFFFFFF
    _check(_libc.syscall(_SYS_CAPSET, ctypes.byref(header), ctypes.byref(data)), "capset")


def syncfs(fd: int) -> None:
    """syncfs(2): flush the file system holding `fd` (cheaper than fsync of every file)."""
    _check(_libc.syncfs(fd), "syncfs")


# The new mount API (x86_64 numbers), used for idmapped layers in user namespaces.
_SYS_OPEN_TREE = 428
_SYS_MOVE_MOUNT = 429
_SYS_FSOPEN = 430
_SYS_FSCONFIG = 431
_SYS_FSMOUNT = 432
_SYS_MOUNT_SETATTR = 442
OPEN_TREE_CLONE = 1
OPEN_TREE_CLOEXEC = os.O_CLOEXEC
AT_FDCWD = -100
AT_EMPTY_PATH = 0x1000
AT_RECURSIVE = 0x8000
MOVE_MOUNT_F_EMPTY_PATH = 0x4
MOVE_MOUNT_T_EMPTY_PATH = 0x40
MOUNT_ATTR_IDMAP = 0x100000
FSCONFIG_SET_STRING = 1
FSCONFIG_CMD_CREATE = 6
FSOPEN_CLOEXEC = 1
FSMOUNT_CLOEXEC = 1


class _MountAttr(ctypes.Structure):
    _fields_ = [
        ("attr_set", ctypes.c_uint64),
        ("attr_clr", ctypes.c_uint64),
        ("propagation", ctypes.c_uint64),
        ("userns_fd", ctypes.c_uint64),
    ]


def _sys(number: int, what: str, *args) -> int:
    return _check(_libc.syscall(number, *args), what)


_SYS_CLONE = 56  # x86_64


def clone_plain(flags: int = 0) -> int:
    """clone(2) on the caller's stack, as fork does: 0 in the child, its pid in the parent.

    Only for a single-threaded caller: the child runs on without the interpreter's after-fork
    hooks (0.5-1 ms sooner), which matter only when other threads exist."""
    return _sys(_SYS_CLONE, "clone", ctypes.c_ulong(flags | signal.SIGCHLD), None, None, None, None)


def one_thread() -> bool:
    """Whether this process runs a single thread (the kernel's count, not only Python's)."""
    try:
        with open("/proc/self/stat", "rb") as f:
            raw = f.read()
        return raw[raw.rindex(b")") + 2 :].split()[17] == b"1"
    except (OSError, ValueError, IndexError):
        return False


def light_fork() -> int:
    """A plain clone when this process runs a single thread (no lock another thread holds can
    be inherited half-taken), os.fork otherwise."""
    return clone_plain() if one_thread() else os.fork()


def open_tree(path, flags: int) -> int:
    """open_tree(2) relative to the cwd; returns a mount descriptor."""
    return _sys(_SYS_OPEN_TREE, f"open_tree {path}", AT_FDCWD, _b(path), ctypes.c_uint(flags))


def mount_setattr_idmap(fd: int, userns_fd: int) -> None:
    """mount_setattr(2) with MOUNT_ATTR_IDMAP on the detached mount `fd`."""
    attr = _MountAttr(MOUNT_ATTR_IDMAP, 0, 0, userns_fd)
    _sys(
        _SYS_MOUNT_SETATTR,
        "mount_setattr",
        fd,
        b"",
        ctypes.c_uint(AT_EMPTY_PATH),
        ctypes.byref(attr),
        ctypes.c_size_t(ctypes.sizeof(attr)),
    )


def move_mount(from_fd: int, to_dirfd: int, to_path) -> None:
    """move_mount(2) of the mount behind `from_fd` onto `to_path` (relative to to_dirfd;
    an empty `to_path` means to_dirfd itself)."""
    flags = MOVE_MOUNT_F_EMPTY_PATH | (0 if to_path else MOVE_MOUNT_T_EMPTY_PATH)
    _sys(
        _SYS_MOVE_MOUNT,
        f"move_mount {to_path}",
        from_fd,
        b"",
        to_dirfd,
        _b(to_path),
        ctypes.c_uint(flags),
    )


def fsmount_new(fstype: str, options: dict[str, str]) -> int:
    """fsopen + fsconfig + fsmount: a new detached mount of `fstype`; returns its fd."""
    fs = _sys(_SYS_FSOPEN, f"fsopen {fstype}", _b(fstype), ctypes.c_uint(FSOPEN_CLOEXEC))
    try:
        for key, value in options.items():
            _sys(
                _SYS_FSCONFIG,
                f"fsconfig {key}",
                fs,
                ctypes.c_uint(FSCONFIG_SET_STRING),
                _b(key),
                _b(value),
                0,
            )
        _sys(
            _SYS_FSCONFIG, "fsconfig create", fs, ctypes.c_uint(FSCONFIG_CMD_CREATE), None, None, 0
        )
        return _sys(_SYS_FSMOUNT, "fsmount", fs, ctypes.c_uint(FSMOUNT_CLOEXEC), ctypes.c_uint(0))
    finally:
        os.close(fs)
