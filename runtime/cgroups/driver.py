"""The verbs both cgroup versions share: create with rollback, processes, kill, destroy, list."""

from __future__ import annotations

import contextlib
import errno
import os
import signal

from runtime.cgroups.base import (
    check_cid,
    remove_tree,
    signal_pids,
    tree_pids,
    wait_until,
    write,
)
from runtime.cgroups.devices import DeviceRule, allowed_rules
from runtime.config import RuntimeConfig
from runtime.errors import Conflict, KernelError, NotFound
from runtime.signals import parse_signal
from runtime.spec import Limits

EMPTY_TIMEOUT = 10.0  # seconds for killed processes to leave their group


class CgroupDriver:
    """Base of the v1 and v2 drivers; subclasses name the directories and write the files."""

    version = 0

    def __init__(self, config: RuntimeConfig):
        self.config = config
        self.prefix = config.cgroup_parent
        self._parents_ready = False  # parents are made once per driver, again if they vanish

    # Kernel-facing hooks, overridden by the fake-cgroupfs tests only.
    def _mkdir(self, path: str) -> None:
        os.mkdir(path)

    def _rmdir(self, path: str) -> None:
        os.rmdir(path)

    # What each version provides.
    def _parent_dirs(self) -> list[str]:
        raise NotImplementedError

    def _group_dirs(self, cid: str) -> list[str]:
        raise NotImplementedError

    def _prepare_parents(self, made: list[str]) -> None:
        raise NotImplementedError

    def _write_limits(self, cid: str, limits: Limits, pids_limit: int) -> None:
        raise NotImplementedError

    def _write_devices(self, cid: str, rules: list[DeviceRule], privileged: bool) -> None:
        raise NotImplementedError

    def _kill_everything(self, cid: str) -> None:
        raise NotImplementedError

    def create(
        self,
        cid: str,
        limits: Limits | None = None,
        default_pids: int | None = None,
        *,
        devices=(),
        privileged: bool = False,
    ) -> None:
        """Make the container's group(s) with every limit and the device allow-list written.

        A leftover group without processes (an interrupted create) is replaced; one with
        processes is a Conflict. On any error the groups made here are removed again.
        """
        check_cid(cid)
        limits = limits if limits is not None else Limits()
        limits.validate()
        rules = allowed_rules(devices, privileged)
        if default_pids is None:
            default_pids = self.config.default_pids_limit
        pids_limit = default_pids if limits.pids is None else limits.pids
        made: list[str] = []
        try:
            if not self._parents_ready:
                self._prepare_parents(made)
                self._parents_ready = True
            self._make_groups(cid, made)
            self._write_limits(cid, limits, pids_limit)
            self._write_devices(cid, rules, privileged)
        except BaseException:
            # Deepest first; a parent still used by another container refuses (EBUSY): fine.
            for path in reversed(made):
                with contextlib.suppress(OSError):
                    self._rmdir(path)
            if any(path in made for path in self._parent_dirs()):
                self._parents_ready = False
            raise

    def _make_groups(self, cid: str, made: list[str]) -> None:
        """mkdir the container's groups; repair a leftover group or a vanished parent once."""
        for attempt in range(2):
            start = len(made)
            try:
                for group in self._group_dirs(cid):
                    self._mkdir(group)
                    made.append(group)
                return
            except (FileExistsError, FileNotFoundError) as err:
                for path in reversed(made[start:]):
                    self._rmdir(path)
                del made[start:]
                if isinstance(err, FileExistsError):
                    if attempt or self._all_pids(cid):
                        raise Conflict(
                            f"a cgroup for container {cid} already exists and is in use"
                        ) from None
                    # An interrupted create left an empty group behind: start afresh.
                    self.destroy(cid)
                else:
                    if attempt:
                        raise KernelError(
                            f"cannot create the cgroup of container {cid}: {err}"
                        ) from err
                    # Someone removed the parent group since we prepared it.
                    self._prepare_parents(made)

    def _make_parent(self, path: str, made: list[str]) -> bool:
        """Create a parent group if missing; True when this call created it."""
        try:
            self._mkdir(path)
        except FileExistsError:
            return False
        made.append(path)
        return True

    def exists(self, cid: str) -> bool:
        """Whether any directory of the container's group exists."""
        return any(os.path.isdir(d) for d in self._group_dirs(check_cid(cid)))

    def procs_files(self, cid: str) -> list[str]:
        """The cgroup.procs files a process writes its pid into to join the container's group."""
        return [f"{d}/cgroup.procs" for d in self._group_dirs(check_cid(cid))]

    def add_process(self, cid: str, pid: int) -> None:
        """Move process `pid` into every group of the container."""
        for path in self.procs_files(cid):
            try:
                write(path, str(int(pid)))
            except FileNotFoundError:
                raise NotFound(f"no cgroup for container {cid}") from None
            except ProcessLookupError:
                raise NotFound(f"no process {pid}") from None
            except OSError as err:
                raise KernelError(f"cannot move process {pid} into {path}: {err.strerror}") from err

    def _all_pids(self, cid: str) -> list[int]:
        pids: set[int] = set()
        for group in self._group_dirs(cid):
            pids.update(tree_pids(group))
        return sorted(pids)

    def pids(self, cid: str) -> list[int]:
        """Pids of every process in the container's group, nested groups included."""
        return self._all_pids(check_cid(cid))

    def kill_all(self, cid: str, sig=signal.SIGKILL) -> None:
        """Send `sig` (number or name) to every process of the container."""
        signal_pids(self.pids(cid), parse_signal(sig))

    def remove_if_empty(self, cid: str) -> bool:
        """Remove the container's groups that hold no process; True when none is left.

        One rmdir per group (a group with processes refuses): the common case of a delete,
        a container that has exited, without reading any group's processes first.
        """
        return not self._rmdir_empty(check_cid(cid))

    def _rmdir_empty(self, cid: str) -> list:
        """One rmdir per group of the container; returns the groups that still hold processes."""
        busy = []
        for group in self._group_dirs(cid):
            try:
                self._rmdir(group)
            except FileNotFoundError:
                continue
            except OSError as err:
                if err.errno not in (errno.EBUSY, errno.ENOTEMPTY):
                    raise KernelError(f"cannot remove cgroup {group}: {err.strerror}") from err
                busy.append(group)
        return busy

    def destroy(self, cid: str) -> None:
        """Kill what is left, wait until the group is empty and remove it; idempotent."""
        check_cid(cid)
        # Fast path: a group whose processes have all exited goes with one rmdir.
        busy = self._rmdir_empty(cid)
        if not busy:
            return
        if self._all_pids(cid):
            self._kill_everything(cid)
            if not wait_until(lambda: not self._all_pids(cid), EMPTY_TIMEOUT):
                raise KernelError(
                    f"processes of container {cid} did not exit after SIGKILL: {self._all_pids(cid)}"
                )
        for group in busy:
            remove_tree(group, self._rmdir)

    def list(self) -> list[str]:
        """Container ids that have a group under the parent."""
        found: set[str] = set()
        for parent in self._parent_dirs():
            try:
                with os.scandir(parent) as entries:
                    found.update(e.name for e in entries if e.is_dir(follow_symlinks=False))
            except FileNotFoundError:
                continue
        return sorted(found)
