"""Create and remove a network or volume row with its host Operation, as the REST API does
(api/host_resources.py): the gate decides the create without and then with the object, the
Operation is queued after the row is written, both in one transaction."""

from config.errors import Conflict
from containers import quotas
from dockerapi.containers import finish
from operations.services import do_host_operation
from rbac import gate


def create(
    call, model, *, resource, team, host, fields: dict, options=None, summary=None, quota=None
):
    """Save a new row of `model` on `host` for `team` and queue `<resource>.create`; `quota(team)`
    raises quotas.QuotaExceeded inside the writing transaction, as the REST API's create does."""
    obj = model(team=team, host=host, **fields)
    decision = gate.require(
        call.user,
        f"{resource}.create",
        obj,
        options=options(obj) if options else None,
        summary=summary,
    )
    if model.objects.filter(host=host, name=obj.name).exists():
        raise Conflict(f"{resource} {obj.name!r} already exists on host {host.name}")

    def save():
        if quota is not None:
            quota(team)
        obj.save(force_insert=True)
        return obj.pk

    with quotas.guarded(decision, summary):
        op = do_host_operation(
            decision,
            kind=f"{resource}.create",
            target_type=resource,
            host=host,
            team=team,
            acting_user=call.user,
            summary=summary,
            before=save,
        )
    finish(op)
    obj.refresh_from_db()
    return obj


def remove(call, obj, *, resource, params=None):
    """Queue `<resource>.remove` for a visible row (the agent deletes the row when done)."""
    decision = gate.require(call.user, f"{resource}.delete", obj, summary=call.summary())
    op = do_host_operation(
        decision,
        kind=f"{resource}.remove",
        target_type=resource,
        target_id=obj.pk,
        host=obj.host,
        team=obj.team,
        params=params,
        acting_user=call.user,
        summary=call.summary(),
    )
    finish(op)
