"""CRIU's kernel-probe cache kept on a tmpfs on hosts whose /run is a plain directory.

Every `criu dump` and `criu restore` first probes the kernel (about 25 ms here) unless it can
load the result from /run/criu.kdat. CRIU writes that file only onto a tmpfs, so that a reboot
into another kernel drops it; on a host whose /run is on disk it probes on every run, twice
inside a migration's freeze (the dump and the restore). There, this module gives the one file
a tmpfs of its own, bound at /run/criu.kdat and filled by a `criu check` run in a private mount
namespace whose /run is a tmpfs: CRIU's own cache, with CRIU's own lifetime (gone at reboot).
Where /run is a tmpfs it does nothing: CRIU keeps the cache itself.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from runtime import linux
from runtime.errors import KernelError

CACHE = "/run/criu.kdat"  # KDAT_RUNDIR "/" KERNDAT_CACHE_NAME in CRIU's build
_MAX_BYTES = 64 * 1024  # the cache is a struct of about 1 KiB
# In a private mount namespace: /run on a tmpfs, so that `criu check` saves its cache there,
# then the cache's bytes on stdout. "$0" is the criu program.
_PROBE = (
    'mount -t tmpfs -o size=64k,mode=0700 tmpfs /run && "$0" check >/dev/null 2>&1; cat ' + CACHE
)


def keep(program: str, marker: Path | None = None) -> bool:
    """Make CRIU's probe cache loadable on this host; True when a dump or restore will load it.

    Best effort: any failure leaves CRIU probing as before (slower, never wrong). `marker`
    (a file per CRIU binary and boot) says the bound cache was filled by this binary: without
    it the cache is probed again, so that an upgraded CRIU (whose build stamp makes the old
    cache stale) probes once, not on every run; with it no probe runs at all."""
    with contextlib.suppress(OSError, KernelError, subprocess.SubprocessError), _lock():
        where = _cache_mount()
        if where == "tmpfs /run":
            return True  # CRIU keeps its cache itself
        if where == "bound" and marker is not None and marker.exists():
            return True
        data = _probe(program)
        if not data:
            return False
        if where == "bound":
            with open(CACHE, "wb") as f:
                f.write(data)
        else:
            _bind(data)
        if marker is not None:
            marker.touch(mode=0o600)
        return True
    return False


def _probe(program: str) -> bytes:
    """The cache `program` saves when its /run is a tmpfs (b"" when it saves none)."""
    unshare = shutil.which("unshare")
    if unshare is None:
        return b""
    done = subprocess.run(
        [unshare, "--mount", "--propagation", "private", "sh", "-c", _PROBE, program],
        capture_output=True,
        timeout=30,
    )
    return done.stdout if 0 < len(done.stdout) <= _MAX_BYTES else b""


def _bind(data: bytes) -> None:
    """Bind a file of a new one-file tmpfs, holding `data`, over /run/criu.kdat."""
    # The mount point: CRIU never keeps a file here when /run is not a tmpfs, so an existing
    # one is an empty leftover; a symlink or anything else is not ours to cover.
    fd = os.open(CACHE, os.O_CREAT | os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    os.close(fd)
    fs = linux.fsmount_new("tmpfs", {"size": "64k", "mode": "0700"})
    try:
        with open(os.open("criu.kdat", os.O_CREAT | os.O_WRONLY, 0o600, dir_fd=fs), "wb") as f:
            f.write(data)
        tree = linux.open_tree(
            f"/proc/self/fd/{fs}/criu.kdat", linux.OPEN_TREE_CLONE | linux.OPEN_TREE_CLOEXEC
        )
    finally:
        os.close(fs)
    try:
        linux.move_mount(tree, linux.AT_FDCWD, CACHE)
    finally:
        os.close(tree)


def _cache_mount() -> str:
    """Where the cache's path lies: "bound" (a mount of its own), "tmpfs /run" (CRIU keeps
    the cache itself) or "disk" (the case this module mends)."""
    if _fstype_at(CACHE, exact=True) is not None:
        return "bound"
    return "tmpfs /run" if _fstype_at(CACHE) == "tmpfs" else "disk"


def _fstype_at(path: str, exact: bool = False) -> str | None:
    """The type of the file system `path` is on, from the longest mount point above it
    (with `exact`, only a mount point at `path` itself counts)."""
    best, fstype = "", None
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            point = fields[4]
            above = path == point or path.startswith(point.rstrip("/") + "/")
            if above and len(point) >= len(best) and (not exact or point == path):
                best, fstype = point, fields[fields.index("-") + 1]
    return fstype


@contextlib.contextmanager
def _lock():
    """One agent at a time binds the cache (two would stack two mounts)."""
    with open(os.path.join(tempfile.gettempdir(), "berth-criu-kdat.lock"), "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        yield
