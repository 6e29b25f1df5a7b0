"""What both cgroup drivers share: the stats record, file access and waiting helpers."""

from __future__ import annotations

import contextlib
import errno
import os
import re
import time
from dataclasses import dataclass

from runtime.errors import InvalidSpec, KernelError, NotFound

_CID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")

# A cgroup value the kernel refused: the value is wrong, not the host.
_REFUSED = (errno.EINVAL, errno.ERANGE, errno.EBUSY, errno.EOVERFLOW)


@dataclass
class CgroupStats:
    """One sample of a container's cgroup counters; a limit of None means unlimited."""

    cpu_usage_ns: int = 0
    memory_usage: int = 0
    memory_limit: int | None = None
    memory_max_usage: int = 0
    pids_current: int = 0
    pids_limit: int | None = None
    blkio_read_bytes: int = 0
    blkio_write_bytes: int = 0
    oom_kills: int = 0


def check_cid(cid: str) -> str:
    """Refuse ids that could escape the parent group (slashes, dots, empty)."""
    if not isinstance(cid, str) or not _CID_RE.match(cid):
        raise InvalidSpec(f"invalid container id {cid!r} for a cgroup name")
    return cid


def write(path: str, value: str) -> None:
    """Write one value into an existing cgroup file (never creates it)."""
    fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    try:
        os.write(fd, value.encode())
    finally:
        os.close(fd)


def read(path: str) -> str:
    """The whole content of a cgroup file, stripped."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        chunks = []
        while chunk := os.read(fd, 65536):
            chunks.append(chunk)
    finally:
        os.close(fd)
    return b"".join(chunks).decode().strip()


def read_int(path: str, default: int | None = 0) -> int | None:
    """An integer file; `default` when it is missing; None for "max"."""
    try:
        text = read(path)
    except FileNotFoundError:
        return default
    return None if text == "max" else int(text)


def read_keyed(path: str) -> dict[str, int]:
    """A flat keyed file ("key value" per line) such as memory.events or cpu.stat."""
    try:
        text = read(path)
    except FileNotFoundError:
        return {}
    result = {}
    for line in text.splitlines():
        key, _, value = line.partition(" ")
        if value.strip().lstrip("-").isdigit():
            result[key] = int(value)
    return result


def apply_limit(path: str, value: str, what: str) -> None:
    """Write a limit; a refused value becomes InvalidSpec naming the limit."""
    try:
        write(path, value)
    except FileNotFoundError:
        raise InvalidSpec(
            f"{what} cannot be applied on this host: {os.path.basename(path)} does not exist"
        ) from None
    except OSError as err:
        if err.errno in _REFUSED:
            raise InvalidSpec(
                f"invalid {what} {value.strip()!r}: the kernel refused it ({err.strerror})"
            ) from None
        raise KernelError(f"cannot set {what} in {path}: {err.strerror}") from err


def read_pids(procs_file: str) -> list[int]:
    """The pids listed in one cgroup.procs file ([] when the group is gone)."""
    try:
        return [int(line) for line in read(procs_file).split()]
    except FileNotFoundError:
        return []


def tree_pids(group_dir: str) -> list[int]:
    """Pids of a group and of every group nested below it."""
    pids = []
    for dirpath, _dirs, _files in os.walk(group_dir):
        pids.extend(read_pids(os.path.join(dirpath, "cgroup.procs")))
    return pids


def wait_until(predicate, timeout: float) -> bool:
    """Poll `predicate` with a short, growing sleep; True when it held before `timeout`."""
    deadline = time.monotonic() + timeout
    delay = 0.0005
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(delay)
        delay = min(delay * 2, 0.02)


def remove_tree(group_dir: str, rmdir=os.rmdir) -> None:
    """Remove a group and its nested groups, deepest first; gone already is fine."""
    if not os.path.isdir(group_dir):
        return
    for dirpath, _dirs, _files in os.walk(group_dir, topdown=False):
        for attempt in range(50):
            try:
                rmdir(dirpath)
                break
            except FileNotFoundError:
                break
            except OSError as err:
                # Exiting tasks keep the group busy for a moment after they leave cgroup.procs.
                if err.errno != errno.EBUSY or attempt == 49:
                    raise KernelError(f"cannot remove cgroup {dirpath}: {err.strerror}") from err
                time.sleep(0.002 * (attempt + 1))


def signal_pids(pids: list[int], sig: int) -> None:
    """Send `sig` to each pid; a process that is already gone is fine."""
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)


@contextlib.contextmanager
def existing_group(cid: str):
    """Turn a missing cgroup file into NotFound naming the container."""
    try:
        yield
    except FileNotFoundError:
        raise NotFound(f"no cgroup for container {cid}") from None
