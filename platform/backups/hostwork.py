"""Each host's share of a backup or restore: an Operation on its queue, signed, then waited for."""

import time

from django.db import transaction

from backups import conf
from config.errors import HostTimeout, Unavailable
from operations import dispatch


def start(host, kind: str, params: dict, *, user=None):
    """Queue one operation of `kind` for `host` (sent once the row is committed)."""
    dispatch.check_broker()
    with transaction.atomic():
        op = dispatch.new_operation(
            kind=kind, target_type="host", target_id=host.pk, host=host, params=params, user=user
        )
        dispatch.send_after_commit(op)
    return op


def wait_all(operations: list, timeout: float | None = None) -> dict:
    """Wait for every operation; {host name: operation}. A host that does not finish in time is
    an error naming it (its operation is marked failed so it can never land later)."""
    deadline = time.monotonic() + (timeout or conf.host_timeout())
    done = {}
    for op in operations:
        left = max(0.0, deadline - time.monotonic())
        while not op.is_done and left > 0:
            op = dispatch.wait_for(op, min(left, 60))
            left = max(0.0, deadline - time.monotonic())
        if not op.is_done:
            _give_up(op)
            raise HostTimeout(
                f"host {op.host.name} did not finish its part ({op.kind}) in time: is its agent "
                "running? Nothing of this run is kept"
            )
        if op.state == op.State.FAILED:
            raise Unavailable(f"host {op.host.name} failed: {op.error}"[:800], code="host_error")
        done[op.host.name] = op
    return done


def _give_up(op) -> None:
    from operations.models import Operation

    Operation.objects.filter(pk=op.pk, state__in=["pending", "running"]).update(
        state="failed", error="called off: the backup run gave up waiting for this host"
    )
