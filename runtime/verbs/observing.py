"""Runtime verbs that read a container's state: state, list, wait, stats, top, logs."""

from __future__ import annotations

import time

from runtime.container import inspect
from runtime.container import status as sm
from runtime.container.fsutil import read_json
from runtime.errors import BerthError, InvalidState
from runtime.lazy import LazyModule

# Loaded when a verb first needs it (ctypes, the shim binary): `ps` and `rm` never do.
launch = LazyModule("runtime.container.launch")
plan = LazyModule("runtime.container.plan")


class ObserveVerbs:
    """State dicts, listing, waiting and resource views (mixed into runtime.api.Runtime)."""

    def state(self, ref: str) -> dict:
        """The container's state dict (see docs/contracts.md)."""
        cid = self.store.resolve(ref)
        rec, obs = self._observe(cid)
        return self._compose(cid, rec, obs, self.store.read_state(cid))

    def _compose(self, cid: str, rec: dict, obs: dict, state: dict) -> dict:
        """The state dict from a record (full or the index's summary), observation and state."""
        paths = self.store.paths(cid)
        exit_info = read_json(paths.exit_file, {}) or {}
        stopped = obs["status"] in (sm.STOPPED, sm.CREATED, sm.RESTARTING)
        return {
            "id": cid,
            "name": rec["name"],
            "status": obs["status"],
            "pid": obs["pid"],
            "exit_code": exit_info.get("exit_code") if stopped else None,
            "oom_killed": bool(exit_info) and stopped and self._oom_killed(cid),
            "created": rec["created"],
            "started_at": state.get("started_at"),
            "finished_at": exit_info.get("finished_at"),
            "restart_count": state.get("restart_count", 0),
            "image": rec["image"],
            "image_id": rec["image_id"],
            "hostname": rec["hostname"],
            "spec": rec["spec"],
            # What runs: the spec's entrypoint and command, else the image's (Docker's rule).
            "command": rec["command"]
            if "command" in rec  # the index's summary has it ready
            else plan.command_line(self.spec_of(rec), rec.get("image_config") or {}),
            "network": read_json(paths.network_file, {}) or {},
            "log_path": str(paths.log_file),
        }

    def _oom_killed(self, cid: str) -> bool:
        try:
            return bool(self.cgroups.oom_killed(cid))
        except (OSError, BerthError):
            return False

    def list(self) -> list[dict]:
        """Every container of this runtime's root, oldest first.

        Each container's last composed entry is kept in the store's index and served again
        while nothing about it changed (runtime/container/listing.py); only the others are
        observed from their files.
        """
        from runtime.container.listing import list_containers

        return list_containers(self.store, lambda: self)

    def wait(self, ref: str) -> int:
        """Block until the container is not running; return its exit code."""
        cid = self.store.resolve(ref)
        paths = self.store.paths(cid)
        before = read_json(paths.exit_file)
        self._observe(cid)  # NotFound for a container whose create never finished
        while True:
            # The processes first (cheap); the record is read (NotFound if it went, "created"
            # for one never started) only when they say it stopped.
            obs = sm.observe(paths, lambda: False)
            if obs["status"] == sm.STOPPED:
                _, obs = self._observe(cid)
            now = read_json(paths.exit_file)
            if obs["status"] == sm.STOPPED or (now is not None and now != before):
                return (now or {}).get("exit_code", 0)
            if obs["shim_pid"]:
                launch.wait_gone(obs["pid"] or obs["shim_pid"], 0.2)
            else:
                time.sleep(0.05)

    def stats(self, ref: str) -> dict:
        """Resource usage from the container's cgroup."""
        cid = self.store.resolve(ref)
        return inspect.stats(self, cid)

    def top(self, ref: str) -> dict:
        """The container's processes: {"titles": [...], "processes": [[...], ...]}."""
        cid = self.store.resolve(ref)
        rec, obs = self._observe(cid)
        if obs["status"] not in (sm.RUNNING, sm.PAUSED):
            raise InvalidState(
                f"cannot list processes of container {rec['name']}: it is {obs['status']}"
            )
        return inspect.top(self.cgroups.pids(cid))

    def logs(
        self, ref: str, follow: bool = False, tail=None, since=None, timestamps=False, stop=None
    ):
        """Iterator of (stream, iso_ts, bytes) from the container's log (following it until the
        container stops, or until `stop()` is true)."""
        from runtime.container import logs

        cid = self.store.resolve(ref)
        return logs.read_logs(self, cid, follow=follow, tail=tail, since=since, stop=stop)
