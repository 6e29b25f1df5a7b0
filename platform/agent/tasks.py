"""Celery tasks of the host agent; the web sends them by name to the queue host.<name>."""

import logging
import threading
from datetime import datetime

from celery import shared_task
from celery.signals import worker_ready, worker_shutdown
from django.utils import timezone

from agent import containers_ops, executor, reconcile
from agent import heartbeat as hb
from agent import streams as _streams  # noqa: F401  (registers agent.relay_terminal)
from agent.hostname import queue_for, this_host
from agent.runtime_handle import get_runtime
from containers.models import Container
from runtime.errors import BerthError

log = logging.getLogger(__name__)
RECONCILE_INTERVAL_SECONDS = 15


@shared_task(name="agent.execute_operation", bind=True, acks_late=True, reject_on_worker_lost=True)
def execute_operation(self, operation_id, host=None):
    """Run one Operation of this host by id; a repeated or stale message does nothing."""
    return executor.execute(
        int(operation_id), host_name=host or this_host(), task_id=self.request.id or ""
    )


class QueryFailed(Exception):
    """A read-style call failed on the host; the message is for the user."""


def _query(name, container_id, params):
    container = (
        Container.objects.select_related("host")
        .filter(id=container_id, host__name=this_host())
        .first()
    )
    if container is None:
        raise QueryFailed(f"container {container_id} is not on host {this_host()}")
    try:
        return containers_ops.QUERIES[name](get_runtime(), container, params or {})
    except BerthError as err:
        # A plain exception: the web rebuilds it without importing `runtime`.
        raise QueryFailed(str(err)) from None


@shared_task(name="agent.container_logs")
def container_logs(container_id, params=None):
    """The last log lines of a container: {"lines": [[stream, iso_ts, text], ...]}."""
    return _query("logs", container_id, params)


@shared_task(name="agent.container_stats")
def container_stats(container_id, params=None):
    """One stats sample of a container."""
    return _query("stats", container_id, params)


@shared_task(name="agent.container_top")
def container_top(container_id, params=None):
    """The processes of a container."""
    return _query("top", container_id, params)


@shared_task(name="agent.container_exec")
def container_exec(container_id, params=None):
    """Run a non-interactive command in a container: {"exit_code", "output"}."""
    return _query("exec", container_id, params)


@shared_task(name="agent.reconcile_host", bind=True, acks_late=True, reject_on_worker_lost=True)
def reconcile_host(self, host_name=None, agent_started=None):
    """Compare this host's containers with the database and repair or report the differences."""
    started = datetime.fromisoformat(agent_started) if agent_started else None
    try:
        return reconcile.reconcile_host(host_name or this_host(), agent_started=started)
    except Exception as err:
        if started is None:
            raise  # the next tick tries again
        # The start-up pass recovers cut-off operations: it must happen, so it retries.
        log.warning("start-up reconciliation failed, retrying: %s", err)
        raise self.retry(countdown=RECONCILE_INTERVAL_SECONDS, max_retries=None) from err


@shared_task(name="agent.heartbeat")
def heartbeat(host_name=None):
    """Stamp Host.last_heartbeat and mark hosts silent for three intervals as down."""
    return {"marked_down": hb.beat(host_name or this_host(), info=hb.host_info(get_runtime))}


class _Timer(threading.Thread):
    """Sends this host's heartbeat and reconcile tasks to its own queue, every interval.

    The tasks go through the queue (not run here) so that a heartbeat proves the worker takes
    tasks; `expires` drops the ones a busy or disconnected worker could not take in time.
    """

    def __init__(self, host_name):
        super().__init__(name="berth-agent-timer", daemon=True)
        self.host_name = host_name
        self.started = timezone.now()
        self.stopping = threading.Event()

    def run(self):
        queue = queue_for(self.host_name)
        # Operations claimed before this moment belong to a dead agent (see recover_operations).
        started = self.started.isoformat()
        while not self.stopping.is_set():
            try:
                heartbeat.apply_async(
                    args=[self.host_name], queue=queue, expires=hb.INTERVAL_SECONDS
                )
                reconcile_host.apply_async(
                    args=[self.host_name],
                    kwargs={"agent_started": started},
                    queue=queue,
                    expires=None if started else RECONCILE_INTERVAL_SECONDS,
                )
                started = None
            except Exception as err:  # Redis down: the worker reconnects; try again next tick
                log.warning("agent timer could not send tasks: %s", err)
            self.stopping.wait(min(hb.INTERVAL_SECONDS, RECONCILE_INTERVAL_SECONDS))


_timer: _Timer | None = None


@worker_ready.connect
def _start_timer(sender=None, **kwargs):
    global _timer
    _timer = _Timer(this_host())
    _timer.start()


@worker_shutdown.connect
def _stop_timer(sender=None, **kwargs):
    if _timer is not None:
        _timer.stopping.set()
