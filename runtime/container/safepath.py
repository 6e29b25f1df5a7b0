"""Resolve a path inside a root directory without ever leaving it (CVE-2021-30465).

Each component is opened with O_NOFOLLOW relative to its parent's descriptor; a symlink is
read and resolved as if the root were `/`, so `../../..` and absolute links stay inside.
"""

from __future__ import annotations

import errno
import os
import stat

from runtime.errors import InvalidSpec

_MAX_LINKS = 40


def open_in_root(root_fd: int, path: str, create: str | None = None, mode: int = 0o755) -> int:
    """Return an O_PATH fd for `path` inside the directory `root_fd`.

    `create` is "dir" or "file": missing components are created (parents as directories).
    Raises InvalidSpec if the path cannot be resolved inside the root.
    """
    parts = [p for p in path.split("/") if p and p != "."]
    stack = [os.dup(root_fd)]  # descriptors of the directories walked so far
    links = 0
    try:
        while parts:
            name = parts.pop(0)
            if name == "..":
                if len(stack) > 1:
                    os.close(stack.pop())
                continue
            cur = stack[-1]
            try:
                st = os.stat(name, dir_fd=cur, follow_symlinks=False)
            except FileNotFoundError:
                if create is None:
                    raise InvalidSpec(f"path {path!r} does not exist in the container") from None
                if parts or create == "dir":
                    os.mkdir(name, mode, dir_fd=cur)
                else:
                    os.close(
                        os.open(
                            name,
                            os.O_CREAT | os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC,
                            0o644,
                            dir_fd=cur,
                        )
                    )
                st = os.stat(name, dir_fd=cur, follow_symlinks=False)
            if stat.S_ISLNK(st.st_mode):
                links += 1
                if links > _MAX_LINKS:
                    raise InvalidSpec(f"too many symbolic links resolving {path!r}")
                target = os.readlink(name, dir_fd=cur)
                if target.startswith("/"):
                    while len(stack) > 1:
                        os.close(stack.pop())
                parts = [p for p in target.split("/") if p and p != "."] + parts
                continue
            if parts and not stat.S_ISDIR(st.st_mode):
                raise InvalidSpec(f"path {path!r}: {name!r} is not a directory")
            try:
                fd = os.open(name, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=cur)
            except OSError as err:
                if err.errno == errno.ELOOP:  # swapped for a symlink under our feet
                    raise InvalidSpec(f"path {path!r} changed while resolving it") from None
                raise
            stack.append(fd)
        result = stack.pop()
        return result
    finally:
        for fd in stack:
            os.close(fd)


def fd_path(fd: int) -> str:
    """The magic-link path that makes mount(2) act on exactly the object behind `fd`."""
    return f"/proc/self/fd/{fd}"
