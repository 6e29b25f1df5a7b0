"""Stops that wait for nobody: signal, park the operation, complete it when the container exits.

A stop (or restart) sends the stop signal and arms the shim's kill deadline
(runtime/container/grace.py), then returns its worker. The operation stays `running`, its
result marked {"waiting": "exit", ...}. The Waiter, a thread in the agent's main process,
watches parked operations: when the container has exited it releases the network (and for
a restart starts it again), records the state and finishes the operation, which pushes the
completion to a request waiting on ?wait= (operations/completion.py). Should a shim not
enforce its deadline (one started before this agent version), the Waiter kills the container
itself shortly after the deadline.
"""

import contextlib
import logging
import os
import select
import threading
import time

from django.db import close_old_connections, transaction

from agent import claims, observe
from containers.models import Container
from operations.models import Operation
from runtime.errors import BerthError, NotFound

log = logging.getLogger(__name__)

WAITING = "exit"
PARKED_KINDS = ("container.stop", "container.restart")
# A container that honours its stop signal usually exits within milliseconds: finish those
# in the worker, as before, and park only the ones still running after this.
QUICK_EXIT_SECONDS = 0.1
# How often the Waiter looks again while operations are parked (it wakes at once on their
# exits, and on a new park through the wake pipe).
POLL_SECONDS = 0.2
# With nothing parked it sleeps on the wake pipe: every park in a process forked from the
# agent's main one wakes it at once, and this look catches a park made anywhere else. Polling
# the database five times a second instead was half of an idle agent's CPU (issue 19).
IDLE_POLL_SECONDS = 5.0
# The Waiter's own kill, only when the shim did not kill at its deadline.
BACKSTOP_SLACK_SECONDS = 2.0
# The runtime's per-container locks are POSIX record locks, which threads of one process do not
# exclude each other by: the main process's threads that change containers (this Waiter, the
# reconciliation loop) take this lock instead.
MAIN_PROCESS_LOCK = threading.RLock()


class WakePipe:
    """A pipe the agent's main process opens before its pool forks: a worker that parks an
    operation writes a byte, and the Waiter (in the main process) wakes on it."""

    def __init__(self):
        self.fds: tuple[int, int] | None = None

    def open(self) -> None:
        """Make the pipe (in the main process, before the pool's workers are forked)."""
        if self.fds is None:
            # Non-blocking: a worker never waits on a full pipe (one byte is enough anyway).
            self.fds = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)

    def wake(self) -> None:
        """Tell the Waiter a park happened (nothing when this process has no pipe)."""
        if self.fds is not None:
            with contextlib.suppress(OSError):  # full: a wake is pending already
                os.write(self.fds[1], b"!")

    def reader(self) -> int | None:
        return None if self.fds is None else self.fds[0]

    def drain(self) -> None:
        """Read every pending byte (the Waiter looks at the database once for all of them)."""
        with contextlib.suppress(OSError):
            while os.read(self.fds[0], 4096):
                pass


WAKE = WakePipe()


def _pid_exited(pid, seconds: float) -> bool:
    """Whether process `pid` is gone within `seconds` (it need not be our child)."""
    if not pid:
        return True
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return True
    try:
        return bool(select.select([fd], [], [], seconds)[0])
    finally:
        os.close(fd)


def signal_stop(rt, op, state: dict, *, restart: bool = False) -> dict | None:
    """Send the stop signal without waiting out the grace period.

    Returns the operation's parked result when the container still runs (the Waiter completes
    it), or None when it is already gone (the caller finishes the stop as before).
    """
    timeout = op.params.get("timeout")
    after = rt.signal_stop(state["id"], timeout=timeout, keep=restart)
    if after.get("status") != "running" or _pid_exited(after.get("pid"), QUICK_EXIT_SECONDS):
        return None
    spec = after.get("spec") if isinstance(after.get("spec"), dict) else {}
    grace = timeout if timeout is not None else (spec.get("stop_timeout") or 10)
    return park(op, after, then="start" if restart else "", grace=grace)


def park(op, state: dict, *, then: str, grace) -> dict:
    """Mark the running operation as waiting for the container's exit; returns the marker."""
    marker = {
        "waiting": WAITING,
        "runtime_id": state["id"],
        "pid": state.get("pid"),
        "then": then,
        # Wall clock: the Waiter runs in another process (and maybe after an agent restart).
        "kill_after": time.time() + float(grace or 0),
    }
    Operation.objects.filter(id=op.id, state=Operation.State.RUNNING).update(result=marker)
    # Once the row is committed (at once outside a transaction): the woken Waiter reads it.
    transaction.on_commit(WAKE.wake)
    return marker


def is_parked(result) -> bool:
    """Whether a handler's result means "not done: the Waiter finishes it"."""
    return isinstance(result, dict) and result.get("waiting") == WAITING


def complete(rt, op: Operation) -> bool:
    """Finish a parked operation if its container has exited; True when it is done."""
    marker = op.result or {}
    rid = marker.get("runtime_id")
    container = Container.objects.select_related("host").filter(id=op.target_id).first()
    try:
        state = rt.state(rid)
    except NotFound:
        state = None
    if state is not None and _started_again(state, marker):
        # A start asked during the grace waited for this stop's end and ran it again
        # (runtime StopVerbs._finish_pending_stop): the stop is done; never stop the new run.
        if container is not None:
            observe.record(container, state)
        claims.finish(op, result=observe.snapshot(state))
        return True
    if state is not None and state.get("status") in ("running", "paused", "restarting"):
        if time.time() > float(marker.get("kill_after") or 0) + BACKSTOP_SLACK_SECONDS:
            log.warning("operation %s: the shim did not kill at the deadline; killing", op.id)
            with contextlib.suppress(BerthError):
                # Only the run this stop waited for: a start may have begun another since the
                # state above was read (the shim gone, that start reaped the old run itself).
                rt.kill(rid, "KILL", run_pid=marker.get("pid"))
        return False
    try:
        if state is None:
            # A --rm container: its post-exit hook removed it.
            if container is not None:
                observe.record_missing(container, Container.Observed.REMOVED)
            claims.finish(op, result={"status": "removed"})
            return True
        # The process is gone: this only releases the network (and starts it for a restart).
        # A run begun since the state above was read is not this stop's: left running.
        waited = marker.get("pid")
        if marker.get("then") == "start":
            state = rt.restart(rid, timeout=0, run_pid=waited)
        else:
            state = rt.stop(rid, run_pid=waited)
        state = rt.state(rid) if rid else state
        if container is not None:
            observe.record(container, state)
        claims.finish(op, result=observe.snapshot(state))
    except BerthError as err:
        claims.finish(op, error=str(err))
        if container is not None:
            observe.record_error(container, str(err))
    return True


def _started_again(state: dict, marker: dict) -> bool:
    """Whether the container runs a process other than the one this stop was waiting for."""
    waited = marker.get("pid")
    return (
        bool(waited)
        and state.get("status") in ("running", "paused", "restarting")
        and bool(state.get("pid"))
        and state.get("pid") != waited
    )


class Waiter(threading.Thread):
    """Completes this host's parked stops and restarts as their containers exit."""

    def __init__(self, host_name: str, get_runtime):
        super().__init__(name="berth-agent-waiter", daemon=True)
        self.host_name = host_name
        self.get_runtime = get_runtime
        self.stopping = threading.Event()

    def parked(self) -> list[Operation]:
        ops = Operation.objects.filter(
            host__name=self.host_name, state=Operation.State.RUNNING, kind__in=PARKED_KINDS
        )
        return [op for op in ops if is_parked(op.result)]

    def run(self):
        while not self.stopping.is_set():
            pids = []
            try:
                close_old_connections()
                rt = self.get_runtime()
                for op in self.parked():
                    with MAIN_PROCESS_LOCK:
                        done = complete(rt, op)
                    if not done:
                        pids.append(op.result.get("pid"))
            except Exception as err:  # the database or runtime hiccuped: next round
                log.warning("waiter: %s", err)
                pids.append(None)  # look again soon
            self._sleep(pids)

    def _sleep(self, pids) -> None:
        """Until a watched container exits or a park wakes it; POLL_SECONDS while operations
        are parked (their kill deadlines), IDLE_POLL_SECONDS when none is."""
        fds = []
        for pid in pids:
            with contextlib.suppress(OSError, TypeError):
                fds.append(os.pidfd_open(pid))
        wake = WAKE.reader()
        try:
            timeout = POLL_SECONDS if pids else IDLE_POLL_SECONDS
            if wake is None and not fds:
                self.stopping.wait(POLL_SECONDS)  # no pipe here (tests): poll as before
                return
            ready = select.select(fds + ([wake] if wake is not None else []), [], [], timeout)[0]
            if wake is not None and wake in ready:
                WAKE.drain()
        finally:
            for fd in fds:
                os.close(fd)
