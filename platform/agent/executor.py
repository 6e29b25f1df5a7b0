"""Run one Operation: claim it, call the runtime, record the outcome and the observed state."""

import logging

from agent import (
    backup_ops,
    claims,
    containers_ops,
    image_ops,
    inventory_ops,
    observe,
    resources_ops,
    transfer_ops,
    waiting,
)
from agent.runtime_handle import get_runtime
from containers.models import Container
from runtime.errors import BerthError

log = logging.getLogger(__name__)


def execute(
    op_id: int, *, host_name: str, task_id: str = "", recovering: bool = False, rt=None
) -> dict:
    """Execute operation `op_id` once on this host; returns {state, result, error}.

    A stale, foreign or finished operation is left alone (returns state 'skipped').
    """
    op = claims.claim(op_id, host_name=host_name, task_id=task_id, recovering=recovering)
    if op is None:
        return {"state": "skipped", "result": {}, "error": ""}
    rt = rt or get_runtime()
    container = None
    try:
        resource, _, verb = op.kind.partition(".")
        if resource == "container":
            handler = containers_ops.HANDLERS.get(verb)
            if handler is None:
                raise _Unknown(op.kind)
            container = _container(op)
            result = handler(rt, op, container)
        else:
            handler = (
                resources_ops.HANDLERS.get(op.kind)
                or image_ops.HANDLERS.get(op.kind)
                or transfer_ops.HANDLERS.get(op.kind)
                or inventory_ops.HANDLERS.get(op.kind)
                or backup_ops.HANDLERS.get(op.kind)
            )
            if handler is None:
                raise _Unknown(op.kind)
            result = handler(rt, op)
    except _Unknown:
        claims.finish(op, error=f"this agent does not know the operation {op.kind!r}")
    except (BerthError, Container.DoesNotExist) as err:
        log.info("operation %s %s failed: %s", op.id, op.kind, err)
        claims.finish(op, error=str(err))
        if container is not None:
            observe.record_error(container, str(err))
    except Exception as err:
        # A bug or a kernel surprise: keep the message, never leave the operation running.
        log.exception("operation %s %s crashed", op.id, op.kind)
        claims.finish(op, error=f"internal error in the host agent: {type(err).__name__}: {err}")
    else:
        if waiting.is_parked(result):
            # Not done yet: the Waiter finishes it when the container exits (agent/waiting.py).
            return {"state": op.state, "result": result, "error": ""}
        claims.finish(op, result=result if isinstance(result, dict) else {"value": result})
    return {"state": op.state, "result": op.result, "error": op.error}


class _Unknown(Exception):
    """An operation kind this agent has no handler for."""


def _container(op) -> Container:
    try:
        return Container.objects.select_related("host", "created_by").get(
            id=op.target_id, host_id=op.host_id
        )
    except (Container.DoesNotExist, ValueError):
        raise Container.DoesNotExist(
            f"container {op.target_id} no longer exists on host {op.host.name}"
        ) from None
