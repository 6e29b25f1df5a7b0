"""What decides whether a kept list view is still valid, with nothing but `posix` imported.

Shared by Runtime.list() (runtime/container/listing.py) and `ps`'s quick path
(runtime/cli/quickps.py), which must not import json, sqlite3 or the rest of the runtime.
The functions are os's own: `os` is the pure-Python wrapper around the built-in `posix`, and
importing it (with _collections_abc, for os.environ) costs 1 ms of the 13 ms `ps` takes.
"""

import posix


def open_dir(path) -> int:
    """A descriptor of the directory `path`, -1 when it does not exist."""
    try:
        return posix.open(path, posix.O_RDONLY | posix.O_DIRECTORY | posix.O_CLOEXEC)
    except FileNotFoundError:
        return -1


def _ctime(name: str, dir_fd: int) -> int:
    if dir_fd < 0:
        return 0
    try:
        return posix.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_ctime_ns
    except FileNotFoundError:
        return 0


def ctimes(cdir: int, rdir: int, cid: str) -> tuple[int, int]:
    """(ctime of the persistent directory, of the runtime directory or 0) in ns."""
    return _ctime(cid, cdir), _ctime(cid, rdir)


def key_text(key: tuple[int, int]) -> str:
    """A view's key as the index stores it."""
    return f"{key[0]}:{key[1]}"


def exe(pid: int) -> str | None:
    """The program of a live process; None once it has exited (a zombie has none)."""
    try:
        return posix.readlink(f"/proc/{pid}/exe")
    except OSError:
        return None


def processes_unchanged(procs) -> bool:
    """Whether each (pid, program) a view kept still runs that program (None: a view of
    another format, never valid)."""
    return procs is not None and all(exe(pid) == program for pid, program in procs)
