"""Celery tasks of the host agent; the web sends them by name to the queue host.<name>."""

import logging
import os
import signal
from datetime import datetime

from celery import shared_task
from celery.signals import worker_init, worker_ready, worker_shutdown
from django.conf import settings

from agent import (
    admission,
    containers_ops,
    control_loop,
    detached,
    executor,
    fairness,
    identity,
    lanes,
    reconcile,
    waiting,
)
from agent import db_keep as _db_keep  # noqa: F401  (connections kept across tasks)
from agent import heartbeat as hb
from agent import streams as _streams  # noqa: F401  (registers agent.relay_terminal)
from agent.hostname import queue_for, this_host
from agent.runtime_handle import get_runtime
from config.celery import lane_queue
from containers import purge
from containers.models import Container
from runtime.errors import BerthError, Conflict, InvalidSpec, InvalidState, NotFound
from trust import envelope as sealing

log = logging.getLogger(__name__)
RECONCILE_INTERVAL_SECONDS = settings.BERTH_RECONCILE_SECONDS


def _admit(task, args, kwargs, envelope):
    """Verify a message before it touches anything (agent/admission.py); raises if refused."""
    return admission.admit(task, list(args), kwargs, envelope, host=this_host())


# ignore_result: the Operation row is the outcome (and operations/completion.py announces it);
# a stored result would be one more Redis write and publish per message that nobody reads.
@shared_task(
    name="agent.execute_operation",
    bind=True,
    acks_late=True,
    reject_on_worker_lost=True,
    ignore_result=True,
)
def execute_operation(self, operation_id, host=None, envelope=None):
    """Run one Operation of this host by id; a repeated or stale message does nothing."""
    _admit("agent.execute_operation", [operation_id], {"host": host} if host else {}, envelope)
    host_name = host or this_host()
    # Teams take turns (agent/fairness.py): this message may run another team's operation.
    return fairness.turn(
        host_name,
        lambda op_id, task_id: executor.execute(op_id, host_name=host_name, task_id=task_id),
        op_id=int(operation_id),
        task_id=self.request.id or "",
        send_turn=_send_turn,
    )


@shared_task(
    name="agent.remove_container", acks_late=True, reject_on_worker_lost=True, ignore_result=True
)
def remove_container(container_id, envelope=None):
    """Delete the runtime container of a row the web already marked removed (issue 19)."""
    _admit("agent.remove_container", [container_id], {}, envelope)
    return containers_ops.delete_removed(get_runtime(), int(container_id), host_name=this_host())


@shared_task(name="agent.fair_turn", acks_late=True, reject_on_worker_lost=True, ignore_result=True)
def fair_turn(host_name=None, lane=None, envelope=None):
    """An owed turn (agent/fairness.py): run the next team's waiting operation, if any."""
    _admit("agent.fair_turn", [host_name, lane], {}, envelope)
    name = host_name or this_host()
    return fairness.turn(
        name,
        lambda op_id, task_id: executor.execute(op_id, host_name=name, task_id=task_id),
        send_turn=_send_turn,
    )


def _send_turn():
    """Send this lane's queue one owed turn, signed with this host's key."""
    args = [this_host(), fairness.lane()]
    fair_turn.apply_async(
        args=args,
        kwargs={"envelope": self_signed("agent.fair_turn", args, {})},
        queue=lane_queue(queue_for(this_host()), fairness.lane()),
    )


class QueryFailed(Exception):
    """A read-style call failed on the host; the message is for the user."""


class QueryConflict(QueryFailed):
    """The container is not in a state that allows the call (the web answers 409)."""


class QueryInvalid(QueryFailed):
    """The call's arguments do not fit the container (the web answers 400)."""


class QueryNotFound(QueryFailed):
    """What the call names does not exist on the host (the web answers 404)."""


# The web tells these apart by class name (operations/dispatch.py), never importing `runtime`.
_QUERY_ERRORS = (
    (InvalidState, QueryConflict),
    (Conflict, QueryConflict),
    (InvalidSpec, QueryInvalid),
    (NotFound, QueryNotFound),
)


def _query_error(err: BerthError) -> QueryFailed:
    for runtime_kind, kind in _QUERY_ERRORS:
        if isinstance(err, runtime_kind):
            return kind(str(err))
    return QueryFailed(str(err))


def _query(name, container_id, params, envelope, *, task=None):
    claims = _admit(f"agent.container_{name}", [container_id, params], {}, envelope)
    params = dict(params or {})
    # Whether root is allowed is the gate's word, signed; never what the params say.
    params["root_allowed"] = bool(claims.decision.get("root_allowed"))
    container = (
        Container.objects.select_related("host")
        .filter(id=container_id, host__name=this_host())
        .first()
    )
    if container is None:
        raise QueryFailed(f"container {container_id} is not on host {this_host()}")
    rt = get_runtime()

    def answer():
        try:
            return containers_ops.QUERIES[name](rt, container, params)
        except BerthError as err:
            # A plain exception: the web rebuilds it without importing `runtime`.
            raise _query_error(err) from None

    if task is not None:
        # It waits for a command: run it apart, the worker is free now (agent/detached.py).
        detached.run(task, answer)
    return answer()


@shared_task(name="agent.container_logs", throws=(QueryFailed,))
def container_logs(container_id, params=None, envelope=None):
    """The last log lines of a container: {"lines": [[stream, iso_ts, text], ...]}."""
    return _query("logs", container_id, params, envelope)


@shared_task(name="agent.container_stats", throws=(QueryFailed,))
def container_stats(container_id, params=None, envelope=None):
    """One stats sample of a container."""
    return _query("stats", container_id, params, envelope)


@shared_task(name="agent.container_top", throws=(QueryFailed,))
def container_top(container_id, params=None, envelope=None):
    """The processes of a container."""
    return _query("top", container_id, params, envelope)


@shared_task(name="agent.container_exec", bind=True, throws=(QueryFailed,))
def container_exec(self, container_id, params=None, envelope=None):
    """Run a non-interactive command in a container: {"exit_code", "output"}."""
    return _query("exec", container_id, params, envelope, task=self)


@shared_task(name="agent.reconcile_host", bind=True, acks_late=True, reject_on_worker_lost=True)
def reconcile_host(self, host_name=None, agent_started=None, envelope=None):
    """Compare this host's containers with the database and repair or report the differences."""
    kwargs = {"agent_started": agent_started} if agent_started else {}
    _admit("agent.reconcile_host", [host_name], kwargs, envelope)
    started = datetime.fromisoformat(agent_started) if agent_started else None
    try:
        return reconcile.reconcile_host(host_name or this_host(), agent_started=started)
    except Exception as err:
        if started is None:
            raise  # the next tick tries again
        # The start-up pass recovers cut-off operations: it must happen, so it retries.
        log.warning("start-up reconciliation failed, retrying: %s", err)
        # A retry is a new message: it gets a fresh envelope (the old nonce is spent).
        retry_kwargs = dict(
            kwargs, envelope=self_signed("agent.reconcile_host", [host_name], kwargs)
        )
        raise self.retry(
            countdown=RECONCILE_INTERVAL_SECONDS, max_retries=None, kwargs=retry_kwargs
        ) from err


@shared_task(name="agent.heartbeat")
def heartbeat(host_name=None, envelope=None):
    """Stamp Host.last_heartbeat and mark hosts silent for three intervals as down."""
    _admit("agent.heartbeat", [host_name], {}, envelope)
    result = {"marked_down": hb.beat(host_name or this_host(), info=hb.host_info(get_runtime))}
    # Removed containers' rows past their retention go (containers/purge.py); the beat
    # itself is already recorded if this fails.
    try:
        result["purged"] = purge.purge_removed(host_name or this_host())
    except Exception as err:
        log.warning("could not purge removed containers: %s", err)
    return result


def self_signed(task: str, args: list, kwargs: dict) -> dict:
    """An envelope for a message this agent sends to its own queue, signed with its host key."""
    return sealing.seal(
        identity.current().host_key,
        task=task,
        host=this_host(),
        args=args,
        kwargs=kwargs,
        ttl=RECONCILE_INTERVAL_SECONDS * 4,
    )


@worker_init.connect
def _open_wake_pipe(sender=None, **kwargs):
    # Before the pool forks its workers, so each holds the pipe the Waiter sleeps on.
    waiting.WAKE.open()


@worker_ready.connect
def _start_timer(sender=None, **kwargs):
    try:
        identity.current()
    except identity.MissingIdentity as err:
        # Without an identity no message can be verified: stop, saying why.
        log.critical("%s", err)
        os.kill(os.getpid(), signal.SIGTERM)
        return
    if fairness.lane() == "short":
        # Heartbeat, reconciliation and the Waiter: threads of their own, never queued
        # behind user work (agent/control_loop.py). The long lane's worker runs none.
        control_loop.start(this_host())


@worker_shutdown.connect
def _stop_timer(sender=None, **kwargs):
    control_loop.stop()
    lanes.stop_long_worker()


# The Docker API's file calls (docker cp, export, diff): registered here, defined apart.
from agent import files_tasks as _files_tasks  # noqa: E402,F401
from agent import update_ops as _update_ops  # noqa: E402,F401  (container.update)
