"""Drain a host: cordon it, then recreate each of its containers elsewhere, volumes included.

For each live container (in name order), one step after the other, each an audited Operation:
stop it on the old host (its volumes must be quiet to be copied), move every named volume it
mounts (export on the old host, import on the new one, through transfers/), create it on the
new host from the same spec and start it if it was running, then remove the old one. Any
failure stops that container's move and leaves the old container where it was (started again
if it had been running); the others still move. Running the drain again moves what is left.

The drain runs in the request that asked for it (an admin action, seconds per container).
Containers that join another container's namespaces or link to one are not moved: their
references name containers on this host by runtime id; they are reported for the admin.
"""

import dataclasses

from django.db import transaction

from containers import references
from containers.models import Container
from containers.not_removed import NOT_REMOVED
from containers.services import audit_summary_of_spec
from hosts import placement, services, steps
from hosts.models import Host
from operations.models import Operation
from rbac import gate


@dataclasses.dataclass
class Report:
    """What a drain did: containers moved (old id -> new id and host), and those it could not."""

    moved: list = dataclasses.field(default_factory=list)
    failed: list = dataclasses.field(default_factory=list)

    def as_dict(self) -> dict:
        """The API's answer."""
        return {"moved": self.moved, "failed": self.failed}


def drain(decision, host: Host, *, acting_user, summary=None) -> Report:
    """Cordon `host` and move its containers to other hosts (the decision is host.change)."""
    if not host.cordoned:
        services.set_cordoned(decision, host, True, summary=summary)
    report = Report()
    live = (
        Container.objects.filter(host=host)
        .exclude(desired_state=Container.Desired.REMOVED)
        .filter(NOT_REMOVED)
        .select_related("team", "host", "created_by")
        .order_by("name")
    )
    for container in live:
        try:
            new = _move(container, acting_user=acting_user)
        except steps.StepFailed as err:
            report.failed.append({"id": container.pk, "name": container.name, "error": str(err)})
        else:
            report.moved.append(
                {
                    "id": container.pk,
                    "name": container.name,
                    "new_id": new.pk,
                    "host": new.host.name,
                }
            )
    return report


def _move(container: Container, *, acting_user) -> Container:
    refs = references.container_refs(container.spec)
    if refs:
        raise steps.StepFailed(
            f"it joins or links container(s) on this host ({', '.join(r for _, r in refs)}); "
            "recreate it by hand once they moved"
        )
    target = _target(container, acting_user)
    was_running = container.desired_state in (Container.Desired.RUNNING, Container.Desired.PAUSED)
    if was_running:
        _step(container, "container.stop", acting_user, {"timeout": 10})
    try:
        for name in sorted(set(references.volume_names(container.spec))):
            steps.move_volume(container, name, target, acting_user)
        new = _recreate(container, target, acting_user, start=was_running)
    except steps.StepFailed:
        if was_running:  # leave it as it was found
            Container.objects.filter(pk=container.pk).update(desired_state="running")
            _step(container, "container.start", acting_user, {}, check=False)
        raise
    _step(container, "container.remove", acting_user, {"force": True})
    Container.objects.filter(pk=container.pk).update(desired_state=Container.Desired.REMOVED)
    return new


def _target(container, acting_user) -> Host:
    try:
        choices = [
            h
            for h in placement.candidates(acting_user, container.team)
            if h.pk != container.host_id
        ]
    except Exception as err:  # placement raises the API's errors: keep their message
        raise steps.StepFailed(str(err)) from None
    if not choices:
        raise steps.StepFailed("no other host can take it (all are down, cordoned or not yours)")
    return sorted(choices, key=placement.score)[0]


def _step(container, kind, acting_user, params, *, check=True) -> Operation:
    summary = {"drain": container.host.name, "container": container.name}
    decision = steps.audited(
        acting_user,
        "container." + kind.split(".")[1].replace("remove", "delete"),
        container,
        summary,
    )
    with transaction.atomic():
        op = steps.new_operation(
            kind, container.host, container.team, "container", container.pk, acting_user, params
        )
        gate.record(decision, summary=summary, operation=op)
    return steps.run(op, f"{kind} of {container.name} on {container.host.name}", check=check)


def _recreate(container, target: Host, acting_user, *, start: bool) -> Container:
    spec = dict(container.spec)
    summary = audit_summary_of_spec(
        {"drain": container.host.name, "container": container.name, "spec": spec}
    )
    new = Container(
        team=container.team,
        host=target,
        name=container.name,
        image=container.image,
        spec=spec,
        labels=dict(container.labels or {}),
        desired_state=Container.Desired.RUNNING if start else Container.Desired.CREATED,
        created_by=container.created_by,
    )
    # The gate checks the spec again for the new host (its policy, its images, its volumes).
    decision = gate.decide(acting_user, "container.create", new, options=spec)
    if not decision.allowed:
        gate.record(decision, summary=summary)
        raise steps.StepFailed(f"not allowed on host {target.name}: {decision.reason}")
    try:
        with transaction.atomic():
            new.save(force_insert=True)
            op = steps.new_operation(
                "container.create",
                target,
                new.team,
                "container",
                new.pk,
                acting_user,
                {"start": start},
            )
            gate.record(decision, summary=summary, operation=op)
    except Exception as err:  # a name taken on the target host, for one
        raise steps.StepFailed(f"cannot create it on host {target.name}: {err}") from None
    steps.run(op, f"create of {container.name} on {target.name}")
    new.refresh_from_db()
    return new
