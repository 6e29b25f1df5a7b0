"""State changes of containers: decide, write rows and the audit event in one transaction, then send.

Every `do_*` function takes the acting user keyword-only, goes through the gate, and returns the
Operation the host agent will perform (sent by name after the transaction commits).
"""

import secrets

from django.db import IntegrityError, transaction
from django.utils import timezone

from audit import context
from config.errors import Conflict, InvalidRequest, Unavailable
from containers import host_checks, policy, quotas, references
from containers.models import Container
from hosts import placement
from operations import broker_health, dispatch
from operations.models import Operation
from rbac import gate
from rbac.grants import in_scope

# verb -> desired state after it (None: unchanged)
LIFECYCLE = {
    "start": Container.Desired.RUNNING,
    "stop": Container.Desired.STOPPED,
    "restart": Container.Desired.RUNNING,
    "kill": Container.Desired.STOPPED,
    "pause": Container.Desired.PAUSED,
    "unpause": Container.Desired.RUNNING,
    "remove": Container.Desired.REMOVED,
}
ACTION_OF = {verb: f"container.{verb}" for verb in LIFECYCLE} | {"remove": "container.delete"}
# Observed states in which no process of the container runs on its host (stopped, made but
# never started, failed, unknown to the host): removing one is answered once its row is
# removed, and the host deletes the container after the answer (issue 19; see remove_now).
QUICK_REMOVE = (
    Container.Observed.STOPPED,
    Container.Observed.CREATED,
    Container.Observed.ERROR,
    Container.Observed.GHOST,
)


def _new_name(spec: dict) -> str:
    base = spec["image"].rsplit("/", 1)[-1].split(":", 1)[0].split("@", 1)[0] or "container"
    base = (
        "".join(c if c.isalnum() or c in "_.-" else "-" for c in base).strip("-._") or "container"
    )
    return f"{base[:40]}-{secrets.token_hex(3)}"


def check_broker(decision, summary=None, pending=None) -> None:
    """503 before anything is written when Redis is down; the refusal is audited as failed.

    `pending`: a PING sent at the start of the request (operations/broker_health.Ping)."""
    try:
        dispatch.check_broker(pending)
    except Unavailable as exc:
        gate.record(decision, summary=summary, outcome=gate.FAILED, reason=exc.message)
        raise


def check_placement(decision, host, summary=None) -> None:
    """409 when the host takes no new containers (removed, not joined, cordoned, down);
    the refusal is audited as failed."""
    reason = placement.refusal(host)
    if reason:
        gate.record(decision, summary=summary, outcome=gate.FAILED, reason=reason)
        raise Conflict(reason, code="host_unavailable")


def check_host_fit(decision, host, spec: dict, summary=None) -> None:
    """400 naming the field when the spec cannot work on its host as the host last reported
    it (containers/host_checks.py); the refusal is audited as failed."""
    try:
        host_checks.check(spec, host)
    except host_checks.HostMismatch as exc:
        gate.record(decision, summary=summary, outcome=gate.FAILED, reason=exc.message)
        raise


def _operation(container, kind, user, params=None):
    return dispatch.new_operation(
        kind=kind,
        target_type="container",
        target_id=container.pk,
        host=container.host,
        team=container.team,
        params=params or {},
        user=user,
        request_id=context.current().request_id,
    )


def audit_summary_of_spec(summary: dict | None) -> dict | None:
    """The request summary with environment values hidden: the audit log is readable by
    auditors of every team, and env often carries passwords. Keys stay, for the record."""
    if not summary or not isinstance(summary.get("spec"), dict):
        return summary
    spec = dict(summary["spec"])
    spec["env"] = [f"{str(item).partition('=')[0]}=[redacted]" for item in spec.get("env") or []]
    return {**summary, "spec": spec}


def do_create_container(*, team, host, spec: dict, start: bool, acting_user, summary=None):
    """Create a container row (and start it if asked); returns (container, operation)."""
    # The broker's PING goes now and is read after the gate and the host checks.
    with broker_health.Ping() as pending:
        return _create_container(team, host, spec, start, acting_user, summary, pending)


def _create_container(team, host, spec, start, acting_user, summary, pending):
    summary = audit_summary_of_spec(summary)
    scope = in_scope(acting_user, team_id=team.pk, host_id=host.pk)
    policy.apply_default_limits(spec, scope.default_limits)
    if not spec.get("name"):
        spec["name"] = _new_name(spec)
    container = Container(
        team=team,
        host=host,
        name=spec["name"],
        image=spec["image"],
        spec=spec,
        labels=dict(spec.get("labels") or {}),
        desired_state=Container.Desired.RUNNING if start else Container.Desired.CREATED,
        created_by=acting_user,
    )
    decision = gate.require(
        acting_user, "container.create", container, options=spec, summary=summary
    )
    check_placement(decision, host, summary)
    check_host_fit(decision, host, spec, summary)
    check_broker(decision, summary, pending)
    try:
        with quotas.guarded(decision, summary), transaction.atomic():
            new_volumes = references.unclaimed_volumes(spec, host=host)
            quotas.enforce(
                team,
                new_container=True,
                starting=spec if start else None,
                new_volumes=len(new_volumes),
            )
            container.save(force_insert=True)
            references.claim_new_volumes(spec, team=team, host=host)
            op = _operation(container, "container.create", acting_user, {"start": start})
            gate.record(decision, summary=summary, operation=op)
            dispatch.send_after_commit(op)
    except IntegrityError:
        raise Conflict(
            f"a container named {container.name!r} already exists on host {host.name}"
        ) from None
    return container, op


def do_container_verb(container, verb: str, *, acting_user, params=None, summary=None):
    """start, stop, restart, kill, pause, unpause or remove; returns the Operation."""
    if verb not in LIFECYCLE:
        raise InvalidRequest(f"unknown container action {verb!r}")
    if verb == "remove":
        # A container that runs nothing is removed as one row update, without the broker:
        # its host's deletion goes after the answer, and a message lost with Redis is the
        # host's reconciler's to finish (remove_now). Only a removal the host must do first
        # checks it, like every other verb.
        decision = gate.require(acting_user, ACTION_OF[verb], container, summary=summary)
        op = remove_now(
            container, decision, acting_user=acting_user, params=params, summary=summary
        )
        if op is not None:
            return op
        check_broker(decision, summary)
    else:
        with broker_health.Ping() as pending:  # answered while the gate decides
            decision = gate.require(acting_user, ACTION_OF[verb], container, summary=summary)
            check_broker(decision, summary, pending)
    # Starting a container that was not meant to run counts against the running quotas.
    starts = LIFECYCLE[verb] == Container.Desired.RUNNING and container.desired_state not in (
        Container.Desired.RUNNING,
        Container.Desired.PAUSED,
    )
    try:
        with quotas.guarded(decision, summary), transaction.atomic():
            if starts:
                quotas.enforce(container.team, starting=container.spec)
            # Never over a removal already asked for (its operation may wait for the host): a
            # stop there made the row wanted again while the host deleted the container (a
            # ghost).
            changed = (
                Container.objects.filter(pk=container.pk)
                .exclude(desired_state=Container.Desired.REMOVED)
                .update(desired_state=LIFECYCLE[verb])
            )
            if not changed and verb != "remove":
                raise Conflict(
                    f"cannot {verb} container {container.name!r}: "
                    "its removal is already in progress"
                )
            container.desired_state = LIFECYCLE[verb]
            op = _operation(container, f"container.{verb}", acting_user, params)
            gate.record(decision, summary=summary, operation=op)
            dispatch.send_after_commit(op)
    except Conflict as err:  # recorded after the rollback, so that it stays
        gate.record(decision, summary=summary, outcome=gate.FAILED, reason=err.message)
        raise
    return op


def remove_now(container, decision, *, acting_user, params=None, summary=None):
    """Remove a container that runs nothing, as one row update: the Operation is done now.

    In one transaction: the row becomes removed (wanted and observed, so its name is free for
    a new container at once), the remove Operation is recorded as succeeded, and the audit
    event names it. After the commit the host is asked to delete the runtime container
    (agent.remove_container); a create of the same name that reaches the host first deletes
    it itself (agent/containers_ops.py), and a lost message is the reconciler's to finish
    (a runtime container whose row is removed goes). Returns None, changing nothing, when the
    row may still have a process (running, paused, pending, unknown) or an operation of the
    container is pending or running: those go to the host and are answered when it is done.
    """
    now = timezone.now()
    in_flight = Operation.objects.filter(
        target_type="container",
        target_id=str(container.pk),
        state__in=(Operation.State.PENDING, Operation.State.RUNNING),
    )
    with transaction.atomic():
        if in_flight.exists():
            return None
        removed = Container.objects.filter(pk=container.pk, observed_state__in=QUICK_REMOVE).update(
            desired_state=Container.Desired.REMOVED,
            observed_state=Container.Observed.REMOVED,
            pid=None,
            observed_at=now,
            updated_at=now,
        )
        if removed != 1:
            return None
        op = dispatch.new_operation(
            kind="container.remove",
            target_type="container",
            target_id=container.pk,
            host=container.host,
            team=container.team,
            params=params or {},
            user=acting_user,
            request_id=context.current().request_id,
            state=Operation.State.SUCCEEDED,
            started_at=now,
            finished_at=now,
            # What is left for the host: deleting its files, after this answer.
            result={"removed": True, "host_deletion": "queued"},
        )
        gate.record(decision, summary=summary, operation=op)
        dispatch.send_removal_after_commit(container)
    container.desired_state = Container.Desired.REMOVED
    container.observed_state = Container.Observed.REMOVED
    return op


def do_rename_container(container, new_name: str, *, acting_user, summary=None):
    """Rename in the database and tell the host; returns the Operation."""
    decision = gate.require(acting_user, "container.change", container, summary=summary)
    check_broker(decision, summary)
    old = container.name
    try:
        with transaction.atomic():
            container.name = new_name
            container.spec = {**container.spec, "name": new_name}
            container.save(update_fields=["name", "spec", "updated_at"])
            op = _operation(
                container, "container.rename", acting_user, {"old": old, "new": new_name}
            )
            gate.record(decision, summary=summary, operation=op)
            dispatch.send_after_commit(op)
    except IntegrityError:
        container.name = old
        raise Conflict(f"a container named {new_name!r} already exists on this host") from None
    return op
