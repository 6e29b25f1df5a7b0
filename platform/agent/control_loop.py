"""The agent's own threads: heartbeat, reconciliation and the Waiter, apart from user work.

They run in the main process of the agent's short-lane worker, never in its pool, so no
amount of user work (a burst of creates, a long pull, stops with long grace periods) can
delay a heartbeat or a reconciliation pass: a busy host is never marked down for being busy.
Each loop has its own thread, so a slow reconciliation pass never delays a heartbeat either.
"""

import logging
import threading
import time
from datetime import datetime

from django.conf import settings
from django.db import close_old_connections
from django.utils import timezone

from agent import health, memtrace, reconcile, waiting
from agent import heartbeat as hb
from agent.runtime_handle import get_runtime

log = logging.getLogger(__name__)


class _Loop(threading.Thread):
    """Calls `tick()` every `interval` seconds until stopped; a failing tick is logged."""

    interval = 15.0

    def __init__(self, name: str, host_name: str):
        super().__init__(name=name, daemon=True)
        self.host_name = host_name
        self.stopping = threading.Event()

    def run(self):
        while not self.stopping.is_set():
            try:
                close_old_connections()
                self.tick()
            except Exception as err:  # the database or Redis is away: the next tick retries
                log.warning("%s: %s", self.name, err)
            self.stopping.wait(self.interval)

    def tick(self):
        raise NotImplementedError


class HeartbeatLoop(_Loop):
    """Stamps this host up (and marks silent hosts down) every BERTH_HEARTBEAT_SECONDS."""

    interval = hb.INTERVAL_SECONDS

    def tick(self):
        # Stamped before and after the host's report: listing and reading the counters of
        # hundreds of containers can take tens of seconds on a loaded host, and a stamp that
        # waited for it could go stale (placement refuses a host silent for three intervals).
        hb.beat(self.host_name)
        began = time.monotonic()
        info = hb.host_info(get_runtime)
        took = time.monotonic() - began
        if took > self.interval:
            log.warning("heartbeat: the host's report took %.1f s", took)
        hb.beat(self.host_name, info=info)
        # What the agent.heartbeat task does after a beat goes here too (the task is kept
        # for callers that send it): removed containers' rows past retention are purged.
        try:
            from containers import purge
        except ImportError:
            return
        try:
            purge.purge_removed(self.host_name)
        except Exception as err:  # the beat is recorded already
            log.warning("could not purge removed containers: %s", err)


class ReconcileLoop(_Loop):
    """One reconciliation pass every BERTH_RECONCILE_SECONDS; the first is the start-up pass.

    The start-up pass recovers operations cut off by a dead agent, so it must happen: it is
    tried again every interval until it succeeds.
    """

    interval = settings.BERTH_RECONCILE_SECONDS

    def __init__(self, name: str, host_name: str, started: datetime):
        super().__init__(name, host_name)
        self.agent_started: datetime | None = started

    def tick(self):
        with waiting.MAIN_PROCESS_LOCK:
            reconcile.reconcile_host(self.host_name, agent_started=self.agent_started)
        self.agent_started = None


_threads: list[_Loop | waiting.Waiter | health.HealthMonitor] = []


def start(host_name: str) -> None:
    """Start the heartbeat, reconciliation, Waiter and health-check threads of this agent."""
    started = timezone.now()
    _threads[:] = [
        HeartbeatLoop("berth-agent-heartbeat", host_name),
        ReconcileLoop("berth-agent-reconcile", host_name, started),
        waiting.Waiter(host_name, get_runtime),
        health.HealthMonitor(host_name, get_runtime),
    ]
    for thread in _threads:
        thread.start()
    memtrace.start()  # off unless BERTH_AGENT_MEMTRACE is set (soaks)


def stop() -> None:
    """Ask the threads to end (they are daemons: the process does not wait for them)."""
    for thread in _threads:
        thread.stopping.set()
