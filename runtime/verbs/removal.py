"""Runtime verbs that remove containers and reconcile what dead ones left behind."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal

from runtime.container import restart_due
from runtime.container import status as sm
from runtime.container.fsutil import read_json, write_json
from runtime.errors import BerthError, Conflict, NotFound
from runtime.lazy import LazyModule

# Loaded when a verb first needs it (ctypes, the shim binary): `ps` and `rm` never do.
launch = LazyModule("runtime.container.launch")


def _never_restarts(rec: dict) -> bool:
    """Whether the container's restart policy is "no" (its monitor never starts it again)."""
    return ((rec.get("spec") or {}).get("restart") or {}).get("name", "no") == "no"


class RemoveVerbs:
    """Delete, teardown, post-exit cleanup, reconcile (mixed into runtime.api.Runtime)."""

    def delete(self, ref: str, force: bool = False) -> None:
        """Remove the container: cgroup, network, upper layer and state (force: kill first)."""
        cid = self.store.resolve(ref)
        with self.store.locked(cid):
            if self._clear_if_abandoned(cid):
                return
            rec, obs = self._observe(cid)
            if obs["status"] == sm.RESTARTING and not force and _never_restarts(rec):
                # The init has exited and its monitor is finishing (the exit recorded, the
                # network released): `wait` answers before that ends, and `run` then `rm` must
                # not meet "restarting". A policy that restarts it is refused as before.
                launch.wait_gone(obs["shim_pid"], 2)
                rec, obs = self._observe(cid)
            if obs["process"]:
                if not force:
                    raise Conflict(
                        f"cannot remove container {rec['name']}: it is {obs['status']}; "
                        "stop it first or force the removal"
                    )
                self.store.paths(cid).stop_flag.touch()
                self.store.paths(cid).caller_cleans.touch()
                self._kill_and_wait(cid, obs)
            self._teardown(cid, rec["name"])

    def _teardown(self, cid: str, name: str | None, network: bool = False) -> None:
        paths = self.store.paths(cid)
        with contextlib.suppress(OSError):
            paths.stop_flag.touch()
            paths.caller_cleans.touch()
        obs = sm.observe(paths, lambda: False)
        shims = {obs["shim_pid"]}
        try:  # an exited container's groups go at once, with nobody's parents to look for
            empty = self.cgroups.remove_if_empty(cid)
        except (OSError, BerthError):
            empty = False
        if not empty:
            # A create killed before it recorded the shim: the shim is the parent of the init.
            shims |= self._parents_outside(cid)
            with contextlib.suppress(OSError, BerthError):
                self.cgroups.destroy(cid)
        for pid in shims:
            launch.wait_gone(pid, 10)
        if network and self._has_network(cid):
            with contextlib.suppress(OSError, BerthError):
                self.networks.detach(cid)
        self._detach_network(cid)
        restart_due.clear(self.config, cid)
        self.store.remove(cid, name)

    def _parents_outside(self, cid: str) -> set[int]:
        """Parents of the cgroup's processes that are not in it (a shim nobody recorded)."""
        try:
            pids = set(self.cgroups.pids(cid))
        except (OSError, BerthError):
            return set()
        parents = set()
        for pid in pids:
            with contextlib.suppress(OSError, ValueError):
                with open(f"/proc/{pid}/stat", "rb") as f:
                    raw = f.read()
                ppid = int(raw[raw.rindex(b")") + 2 :].split()[1])
                if ppid not in pids and ppid > 1:
                    parents.add(ppid)
        return parents

    def _has_network(self, cid: str) -> bool:
        rec = read_json(self.store.paths(cid).config_file) or {}
        mode = ((rec.get("spec") or {}).get("network") or {}).get("mode", "none")
        return mode not in ("none", "host") and not mode.startswith("container:")

    def after_exit(self, ref: str) -> None:
        """Release what a container that exited on its own holds (the shim's post-exit hook).

        Its port maps and addresses go, as Docker's do; a container run with auto_remove is
        deleted. A container started again meanwhile is left alone.
        """
        try:
            cid = self.store.resolve(ref)
            with self.store.locked(cid):
                rec, obs = self._observe(cid)
                if obs["process"]:
                    return
                if rec.get("auto_remove"):
                    self._teardown(cid, rec["name"], network=True)
                elif self._has_network(cid):
                    self.networks.detach(cid)
                    self.store.paths(cid).network_file.unlink(missing_ok=True)
        except NotFound:
            return

    def reconcile(self) -> list[str]:
        """Mark containers whose shim is gone (reboot, kill) stopped and clean what they left."""
        gone = []
        for path in self.store.leftovers():
            shutil.rmtree(path, ignore_errors=True)
        self.store.entries(repair=True)  # rows a killed writer left dirty are rewritten
        for cid in self.store.ids():
            with contextlib.suppress(NotFound):
                if self._clear_if_abandoned(cid) or self._reconcile_one(cid):
                    gone.append(cid)
        self._release_orphan_names()
        return gone

    def _release_orphan_names(self) -> None:
        """Free names whose owner has no directory (a create or delete killed half-way)."""
        try:
            names = os.listdir(self.store.names_dir)
        except FileNotFoundError:
            return
        for name in names:
            owner = self.store.name_owner(name)
            if not owner or "/" in owner:
                continue
            if not self.store.paths(owner).dir.exists():
                self.store.release_name(name, owner)
                continue
            # A rename killed half-way: the record tells which of two names is the real one.
            with contextlib.suppress(NotFound), self.store.locked(owner):
                rec = read_json(self.store.paths(owner).config_file) or {}
                if rec.get("name") not in (None, name):
                    self.store.release_name(name, owner)

    def _reconcile_one(self, cid: str) -> bool:
        paths = self.store.paths(cid)
        with self.store.locked(cid):
            rec, obs = self._observe(cid)
            if obs["monitored"]:
                return False
            state = self.store.read_state(cid)
            exit_info = read_json(paths.exit_file)
            # The shim removes shim.json when it ends normally; a leftover one, a process
            # without a shim, or a start with no recorded exit (run_root wiped) is a ghost.
            unfinished = bool(state.get("started_at")) and (
                exit_info is None or exit_info.get("finished_at", "") < state["started_at"]
            )
            if not (obs["process"] or paths.shim_file.exists() or unfinished):
                if paths.network_file.exists():
                    self._detach_network(cid)  # exited on its own: release address and ports
                return False
            with contextlib.suppress(OSError, BerthError):
                self.cgroups.kill_all(cid, signal.SIGKILL)
            with contextlib.suppress(OSError, BerthError):
                self.cgroups.thaw(cid)
            launch.wait_gone(obs["pid"], 5)
            self._detach_network(cid)
            if unfinished or exit_info is None:
                write_json(
                    paths.exit_file,
                    {
                        "exit_code": 255,
                        "finished_at": self.store.now(),
                        "restart_count": (exit_info or {}).get("restart_count", 0),
                    },
                )
            if not state.get("started_at"):
                state["started_at"] = rec["created"]
                self.store.write_state(cid, state)
            paths.shim_file.unlink(missing_ok=True)
            paths.fifo.unlink(missing_ok=True)
        return True
