"""Send work to host agents by task NAME (the web never imports the agent or the runtime).

Task names the host agent implements (queue `host.<name>`):
  agent.execute_operation(operation_id)          -- performs an Operation row, updates it
  agent.container_logs(container_id, params)     -- {"lines": [[stream, iso_ts, text], ...]}
  agent.container_stats(container_id, params)    -- the runtime's stats dict
  agent.container_top(container_id, params)      -- {"titles": [...], "processes": [[...], ...]}
  agent.container_exec(container_id, params)     -- {"exit_code": int, "output": str}
  agent.remove_container(container_id)           -- deletes the runtime container of a row
                                                    already marked removed (no answer)

Every message is signed for its host (trust/envelope.py) and goes as the task's `envelope`
keyword; read-style calls also carry the gate's decision that allowed them.
"""

import contextlib
import contextvars
import logging
import reprlib
import time
import uuid

from celery.exceptions import TimeoutError as CeleryTimeout
from django.conf import settings
from django.db import transaction
from kombu.exceptions import OperationalError as KombuOperationalError
from redis.exceptions import AuthenticationError as RedisAuthenticationError

from config.celery import app as celery_app
from config.celery import operation_queue
from config.errors import Conflict, HostTimeout, InvalidRequest, NotFound, Unavailable
from operations import broker_health, completion
from operations.models import Operation
from trust import envelope, keys

log = logging.getLogger(__name__)
EXECUTE_OPERATION = "agent.execute_operation"
REMOVE_CONTAINER = "agent.remove_container"
# Refusals of read-style calls on the host, by the class name the agent raises them under.
HOST_REFUSALS = {
    "QueryConflict": Conflict,
    "QueryInvalid": InvalidRequest,
    "QueryNotFound": NotFound,
}
# Publishing gives up after this on a broker that does not answer (settings: broker socket).
SEND_TIMEOUT_SECONDS = 5
BROKER_DOWN = "the message broker (Redis) is unreachable; nothing was changed, try again later"
BROKER_AUTH = (
    "the message broker (Redis) refused Berth's credentials: check REDIS_URL or "
    "var/redis.password; nothing was changed"
)


def check_broker(pending: "broker_health.Ping | None" = None) -> None:
    """Raise Unavailable (503) unless the broker answers: checked before anything is written.

    `pending`: a PING sent earlier in the request (broker_health.Ping), read now."""
    try:
        if pending is None:
            broker_health.ping()
        else:
            pending.result()
    except Exception as exc:  # redis raises many kinds; all mean "cannot reach it"
        # A missing or wrong password needs the admin, not a retry: say so (redis-py's
        # AuthenticationError arrives wrapped in kombu's OperationalError).
        chain = [exc, exc.__cause__, exc.__context__]
        refused = any(isinstance(e, RedisAuthenticationError) for e in chain)
        message = BROKER_AUTH if refused else BROKER_DOWN
        raise Unavailable(message, details={"broker_error": str(exc)[:200]}) from None


def new_operation(
    *,
    kind,
    target_type,
    target_id,
    host,
    team=None,
    params=None,
    user=None,
    request_id="",
    **done,
):
    """Create a pending Operation with its task id chosen up front (so the audit event names it).

    `done` (state, result, started_at, finished_at) records one the web completed itself."""
    return Operation.objects.create(
        kind=kind,
        target_type=target_type,
        target_id=str(target_id),
        host=host,
        team=team,
        params=params or {},
        task_id=uuid.uuid4().hex,
        created_by=user,
        request_id=request_id,
        **done,
    )


def signed_kwargs(task_name: str, host_name: str, args: list, *, decision=None, ttl=None) -> dict:
    """The task's keyword arguments: the envelope that signs this message for `host_name`."""
    sealed = envelope.seal(
        keys.control_private_key(),
        task=task_name,
        host=host_name,
        args=args,
        decision=decision,
        ttl=ttl or settings.BERTH_CHANNEL_TTL_SECONDS,
    )
    return {"envelope": sealed}


# What a message's events show of its keyword arguments (the signed envelope, see send_signed).
ENVELOPE_REPR = "{'envelope': '<signed>'}"


def send_signed(task_name: str, host, args: list, **options):
    """Send a task to `host`'s queue, signed for that host (all sends to agents go here)."""
    if host.revoked_at is not None:
        raise Unavailable(
            f"host {host.name} was removed; it takes no more work", code="host_removed"
        )
    return celery_app.send_task(
        task_name,
        args=args,
        kwargs=signed_kwargs(task_name, host.name, args, decision=options.pop("decision", None)),
        queue=options.pop("queue", None) or host.queue,
        # What events and monitors show of the message. Celery's default is a saferepr() of
        # args and kwargs; the envelope repeats the args, signed, and its repr was a fifth of
        # a send's CPU (issue 19).
        argsrepr=reprlib.repr(args),  # bounded, as saferepr's is
        kwargsrepr=ENVELOPE_REPR,
        **options,
    )


def decision_claims(decision, *, object_id, root_allowed=False) -> dict:
    """What a read-style call tells the agent about the gate's decision behind it."""
    user = decision.user
    return {
        "user": getattr(user, "pk", None),
        "username": getattr(user, "username", ""),
        "action": decision.action,
        "object": object_id,
        "root_allowed": bool(root_allowed),
        "expires": round(time.time() + settings.BERTH_CHANNEL_TTL_SECONDS, 3),
    }


def send_after_commit(operation: Operation) -> None:
    """Queue agent.execute_operation for this Operation once the transaction commits."""
    host = operation.host
    op_id, task_id, kind = operation.pk, operation.task_id, operation.kind

    def send():
        try:
            # Long work (pull, build, export, ...) goes to the host's long lane.
            queue = operation_queue(host.queue, kind)
            # No result to wait for (the row is the truth, its outcome is pushed by
            # operations/completion.py): without ignore_result Celery subscribes this
            # thread's result backend to the task's channel on every send (a pub/sub
            # connection and a backend per request thread: most of the send's CPU).
            send_signed(
                EXECUTE_OPERATION, host, [op_id], task_id=task_id, queue=queue, ignore_result=True
            )
        except Exception as exc:
            # The broker died between the check and the commit. The row is the outbox: it
            # stays pending, and the host's reconciler runs pending work whose message was
            # lost from the row itself (agent/reconcile.py), so desired state still wins.
            log.warning(
                "operation %s not queued (%s); its host will take it from the row", op_id, exc
            )

    transaction.on_commit(send)


_later: contextvars.ContextVar[list | None] = contextvars.ContextVar("berth_later", default=None)


class AfterResponse:
    """Messages that need not hold the answer back, sent once the response is out.

    A view opens `collecting()` around the service call and hands the response to `attach()`:
    what `send_removal_after_commit` queued meanwhile is sent when the server closes the
    response (after its body went out: Django's ASGI and WSGI handlers and the test client
    all close it). Anything that does not reach `attach` (an error on the way) is sent at
    once; outside `collecting()` messages go on commit as usual."""

    def __init__(self):
        self.calls: list = []

    @contextlib.contextmanager
    def collecting(self):
        """Keep the deferrable messages of the transactions committed inside."""
        token = _later.set(self.calls)
        try:
            yield self
        except BaseException:
            self.run()
            raise
        finally:
            _later.reset(token)

    def attach(self, response):
        """Send what was kept once `response` is closed; returns the response."""
        if self.calls:
            response._resource_closers.append(self.run)
        return response

    def run(self) -> None:
        """Send what was kept (each send logs its own failure)."""
        calls = list(self.calls)
        self.calls.clear()
        for call in calls:
            call()


def send_removal_after_commit(container) -> None:
    """Ask the container's host to delete its runtime container once the transaction (which
    marked the row removed) commits, or once the answer is out when the view collects such
    messages (AfterResponse). The row is the outbox here too: if the message is lost, the
    host's reconciler deletes a runtime container whose row is removed (agent/reconcile.py)."""
    host, pk = container.host, container.pk

    def send():
        try:
            send_signed(REMOVE_CONTAINER, host, [pk], ignore_result=True)
        except Exception as exc:
            log.warning(
                "removal of container %s not sent (%s); its host's reconciler does it", pk, exc
            )

    def on_commit():
        kept = _later.get()
        if kept is None:
            send()
        else:
            kept.append(send)

    transaction.on_commit(on_commit)


def wait_for(operation: Operation, seconds: float) -> Operation:
    """Wait until the Operation is done or `seconds` have passed; returns it fresh.

    The agent announces each outcome on Redis (operations/completion.py); this subscribes
    first, then re-reads the row on every wake-up and at least every SLOW_POLL_SECONDS, so
    the row decides and a lost announcement only delays the answer.
    """
    deadline = time.monotonic() + max(0.0, min(seconds, settings.BERTH_MAX_WAIT_SECONDS))
    if operation.is_done:
        return operation  # completed by the web itself (a remove that was a row update)
    # No read before subscribing: the loop's first read comes after it, and the operation
    # was just created (a read here would find it pending, one query for nothing).
    # refresh_from_db drops cached relations; the host row does not change with the outcome
    # and the answer names it (one query less per wait).
    host_field = Operation._meta.get_field("host")
    host = operation.host if host_field.is_cached(operation) else None
    with completion.Listener(operation.pk) as listener:
        while True:
            operation.refresh_from_db()
            if host is not None and operation.host_id == host.pk:
                host_field.set_cached_value(operation, host)
            left = deadline - time.monotonic()
            if operation.is_done or left <= 0:
                return operation
            listener.wait(min(left, completion.SLOW_POLL_SECONDS))


def call_host(host, task_name: str, args: list, timeout: float | None = None, *, decision=None):
    """Run a read-style task on a host agent and wait for its result (503 / 504 on failure).

    `decision` (see decision_claims) is the gate's answer that the agent checks the call against.
    """
    timeout = timeout or settings.BERTH_RPC_TIMEOUT_SECONDS
    check_broker()
    try:
        result = send_signed(task_name, host, args, decision=decision)
    except KombuOperationalError as exc:
        raise Unavailable(BROKER_DOWN, details={"broker_error": str(exc)[:200]}) from None
    try:
        return result.get(timeout=timeout, propagate=True, disable_sync_subtasks=False)
    except CeleryTimeout:
        host.refresh_from_db(fields=["last_heartbeat", "state"])
        if host.is_alive:
            # The agent beats but has not answered: busy with other work, not gone. 504 means
            # the host does not answer at all (no heartbeat either).
            raise Unavailable(
                f"host {host.name} is busy and did not take the request within {timeout:g} s; "
                "try again",
                code="host_busy",
            ) from None
        raise HostTimeout(f"host {host.name} did not answer within {timeout:g} s") from None
    except KombuOperationalError as exc:
        raise Unavailable(BROKER_DOWN, details={"broker_error": str(exc)[:200]}) from None
    except Exception as exc:
        # The task itself raised on the host: a refusal the user can act on keeps its status
        # (agent/tasks.py names them; the web never imports the agent), anything else is 503.
        answer = HOST_REFUSALS.get(type(exc).__name__)
        if answer is not None:
            raise answer(str(exc)[:500]) from None
        raise Unavailable(f"host {host.name} failed: {exc}"[:500], code="host_error") from None
