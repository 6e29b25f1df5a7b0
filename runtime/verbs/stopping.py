"""Runtime verbs that signal, stop, restart, pause and unpause containers."""

from __future__ import annotations

import contextlib
import os
import signal
import time

from runtime.container import grace as grace_mod
from runtime.container import restart_due
from runtime.container import status as sm
from runtime.errors import BerthError
from runtime.lazy import LazyModule
from runtime.signals import parse_signal

# How long past its armed deadline a stopping container's shim may take to kill it.
STOP_DEADLINE_SLACK_SECONDS = 5

# Loaded when a verb first needs it (ctypes, the shim binary): `ps` and `rm` never do.
launch = LazyModule("runtime.container.launch")


class StopVerbs:
    """Signals, stop with grace, restart, pause (mixed into runtime.api.Runtime)."""

    def kill(self, ref: str, sig="KILL", *, run_pid: int | None = None) -> None:
        """Send a signal to the container's init (Docker: only while it runs).

        `run_pid`: only to the run whose init had that pid; a run started since is left alone.
        """
        number = parse_signal(sig)
        cid = self.store.resolve(ref)
        with self.store.locked(cid):
            rec, obs = self._observe(cid)
            if _another_run(obs, run_pid):
                return
            sm.check("kill", rec["name"], obs["status"])
            if number in (signal.SIGKILL, signal.SIGTERM, signal.SIGINT):
                # A deliberate kill is a user stop: no restart, as in Docker.
                self.store.paths(cid).stop_flag.touch()
                # Kept in the state too (the flag goes with a reboot): unless-stopped stays down.
                state = self.store.read_state(cid)
                if not state.get("user_stopped"):
                    self.store.write_state(cid, dict(state, user_stopped=True))
            if obs["pid"]:  # never 0: os.kill(0, ...) would signal our own process group
                with contextlib.suppress(ProcessLookupError):
                    os.kill(obs["pid"], number)
        if number == signal.SIGKILL:
            self._wait_stopped(cid, 10)

    def stop(self, ref: str, timeout: int | None = None, *, run_pid: int | None = None) -> dict:
        """Stop signal, up to `timeout` seconds of grace, then SIGKILL; a no-op if stopped.

        `run_pid`: stop only the run whose init had that pid (the one a caller waited for); a
        run started since, by another caller, is left running.
        """
        return self._stop(ref, timeout, keep=False, run_pid=run_pid)

    def signal_stop(self, ref: str, timeout: int | None = None, *, keep: bool = False) -> dict:
        """Send the stop signal and return at once; the shim SIGKILLs after `timeout` seconds.

        A paused container, or a grace of 0, is stopped here and now (that takes no waiting).
        Call stop() (or restart(), with `keep`) once it has exited, to release its network.
        """
        return self._stop(ref, timeout, keep, wait=False)

    def _stop(
        self, ref: str, timeout: int | None, keep: bool, wait: bool = True, run_pid=None
    ) -> dict:
        cid = self.store.resolve(ref)
        with self.store.locked(cid):
            rec, obs = self._observe(cid)
            if _another_run(obs, run_pid):
                return self.state(cid)
            if obs["process"]:
                spec = self.spec_of(rec)
                grace = spec.stop_timeout if timeout is None else timeout
                paths = self.store.paths(cid)
                paths.stop_flag.touch()
                if keep or not rec.get("auto_remove"):  # --rm: the post-exit hook removes it
                    paths.caller_cleans.touch()
                state = self.store.read_state(cid)
                state["user_stopped"] = True
                self.store.write_state(cid, state)
                if obs["status"] == sm.RUNNING and obs["pid"]:
                    if not wait and grace > 0 and obs["shim_pid"]:
                        # The shim sits out the grace period (runtime/container/grace.py).
                        grace_mod.arm(
                            paths,
                            pid=obs["pid"],
                            shim_pid=obs["shim_pid"],
                            stop_signal=parse_signal(spec.stop_signal),
                            grace=grace,
                        )
                        return self.state(cid)
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(obs["pid"], parse_signal(spec.stop_signal))
                    self._wait_stopped(cid, grace)
                self._kill_and_wait(cid, obs)
            else:
                # Not running. A restart its policy still owes (a failed start after its monitor
                # was lost) is cancelled, as Docker's stop cancels a restarting one; and the
                # stop is kept, so that unless-stopped stays down after a boot: the agent keeps
                # back a lost monitor's restart while a stop is on its way (agent/boot.py).
                restart_due.clear(self.config, cid)
                state = self.store.read_state(cid)
                if not state.get("user_stopped"):
                    self.store.write_state(cid, dict(state, user_stopped=True))
            self._detach_network(cid)
            # Read under the lock: a --rm container's post-exit hook removes it right after.
            return self.state(cid)

    def _kill_and_wait(self, cid: str, obs: dict) -> None:
        with contextlib.suppress(OSError, BerthError):
            self.cgroups.kill_all(cid, signal.SIGKILL)
        with contextlib.suppress(OSError, BerthError):
            self.cgroups.thaw(cid)  # frozen tasks do not die until thawed
        launch.wait_gone(obs.get("pid"), 10)
        launch.wait_gone(obs.get("shim_pid"), 10)

    def _wait_stopped(self, cid: str, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while True:
            obs = sm.observe(self.store.paths(cid), lambda: False)
            if not obs["pid"]:
                launch.wait_gone(obs["shim_pid"], max(0.0, deadline - time.monotonic()))
                return True
            if time.monotonic() >= deadline:
                return False
            launch.wait_gone(obs["pid"], min(0.1, max(0.0, deadline - time.monotonic())))

    def _finish_pending_stop(self, cid: str) -> None:
        """Let a stop that is sitting out its grace period end before a start goes on.

        Without this a start during the grace found the container running, did nothing, and
        the stop's kill then left it stopped while its owner had asked for it to run. Its shim
        kills at the armed deadline; a container whose shim is gone has nobody to do that, so it
        is reaped (killed, its exit recorded) here, as the reconciler would.
        """
        paths = self.store.paths(cid)
        if not paths.stop_flag.exists():
            return
        obs = sm.observe(paths, lambda: False)
        if obs["status"] != sm.RUNNING or not obs["pid"]:
            return
        if obs["monitored"]:
            armed = grace_mod.deadline(paths)
            if not armed:
                return  # a signal (kill -s TERM) it may ignore, not a stop with a deadline
            until = armed + STOP_DEADLINE_SLACK_SECONDS
            while True:
                # In short steps: a shim that dies during the wait (the faults test kills one
                # there) will never kill at the deadline, and the old run must not be taken
                # for the new one. Its container is then reaped as below.
                step = min(0.5, max(0.0, until - time.monotonic()))
                if self._wait_stopped(cid, step):
                    with self.store.locked(cid):
                        self._detach_network(cid)  # what the stop's caller would release
                    return
                if not sm.observe(paths, lambda: False)["monitored"]:
                    break
                if time.monotonic() >= until:
                    # Its shim lives but missed the deadline: kill it as the stop would.
                    with self.store.locked(cid):
                        self._kill_and_wait(cid, sm.observe(paths, lambda: False))
                        self._detach_network(cid)
                    return
        from runtime.container import boot  # boot needs the launch module; most verbs do not

        boot.reap(self, cid)

    def _detach_network(self, cid: str) -> None:
        if self.store.paths(cid).network_file.exists() or self._networks is not None:
            with contextlib.suppress(OSError, BerthError):
                self.networks.detach(cid)
            self.store.paths(cid).network_file.unlink(missing_ok=True)

    def restart(self, ref: str, timeout: int | None = None, *, run_pid: int | None = None) -> dict:
        """Stop (if running) and start again (a --rm container is kept for the start).

        `run_pid`: as for stop(); a run started since is left running, and not started again.
        """
        self._stop(ref, timeout, keep=True, run_pid=run_pid)
        return self.start(ref)

    def pause(self, ref: str) -> None:
        """Freeze every process of the container (cgroup freezer)."""
        cid = self.store.resolve(ref)
        with self.store.locked(cid):
            rec, obs = self._observe(cid)
            sm.check("pause", rec["name"], obs["status"])
            self.cgroups.freeze(cid)

    def unpause(self, ref: str) -> None:
        """Thaw a paused container."""
        cid = self.store.resolve(ref)
        with self.store.locked(cid):
            rec, obs = self._observe(cid)
            sm.check("unpause", rec["name"], obs["status"])
            self.cgroups.thaw(cid)


def _another_run(obs: dict, run_pid: int | None) -> bool:
    """Whether the container runs a process other than the run `run_pid` (None: any run).

    A caller that waited for one run's end (the agent's Waiter, after a stop's grace) acts on
    that run only: a start asked meanwhile by someone else began a run it must never stop.
    """
    return bool(run_pid) and bool(obs["process"]) and bool(obs["pid"]) and obs["pid"] != run_pid
