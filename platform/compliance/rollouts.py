"""Rolling updates: recreate the containers of an old image on a new one, one at a time.

Plan (nothing changes): the live containers on the image's host whose stored reference
resolves to the old image; every one needs container.recreate (refused: 403, audited).
Containers that other containers join or link to by runtime id are marked blocked (their
dependants would lose them) and left alone.

Run (in the request, like a drain; each step an audited Operation on the host, waited for):
the new image first (`pull` the target again, or take the target as it is on the host), then
per container: stop the old one, rename it aside, create the new one from the same spec (same
name, networks, volumes, limits; image = the target) and start it, wait until it runs (and,
when its image has a HEALTHCHECK, passes it), then remove the old one. When the new one fails,
it is removed, the old one gets its name back and is started again, and the rollout stops:
the containers after it are untouched. Progress is saved in the plan after every container.
"""

import dataclasses
import time

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from compliance import lookups
from compliance.models import Rollout
from config.errors import Conflict, InvalidRequest
from containers.models import Container
from containers.not_removed import NOT_REMOVED
from containers.services import audit_summary_of_spec
from hosts import steps
from images.models import Image
from rbac import gate
from rbac.errors import AccessDenied

HEALTH_TRIES = 5


def _settle_seconds() -> float:
    """How long a new container must stay up before it counts as started (crash on start)."""
    return float(getattr(settings, "BERTH_ROLLOUT_SETTLE_SECONDS", 3))


def _live(host_id):
    return (
        Container.objects.filter(host_id=host_id)
        .exclude(desired_state=Container.Desired.REMOVED)
        .filter(NOT_REMOVED)
        .select_related("team", "host", "created_by")
        .order_by("name")
    )


def _referenced(container, others) -> bool:
    """Whether another live container joins or links to `container` by its runtime id."""
    if not container.runtime_id:
        return False
    marker = container.runtime_id
    for other in others:
        if other.pk == container.pk:
            continue
        spec = other.spec or {}
        values = list((spec.get("namespaces") or {}).values())
        network = spec.get("network") or {}
        values += [network.get("mode") or ""] + list(network.get("links") or [])
        if any(marker in str(v) for v in values):
            return True
    return False


def _images_on_host(image: Image, acting_user, summary) -> dict:
    """{container pk: image id} as the host's runtime records them (an audited operation)."""
    summary = (summary or {}) | {"rollout": "plan", "image": image.image_id}
    try:
        decision = steps.audited(acting_user, "image.view", image, summary)
        with transaction.atomic():
            op = steps.new_operation(
                "rollout.images", image.host, image.team, "host", image.host_id, acting_user, {}
            )
            gate.record(decision, summary=summary, operation=op)
        op = steps.run(op, f"listing the containers' images on host {image.host.name}")
    except steps.StepFailed as err:
        raise Conflict(str(err), code="host_unavailable") from None
    return op.result.get("images") or {}


def do_plan(
    image: Image, *, target_ref: str, source: str, acting_user, summary=None, team=None
) -> Rollout:
    """Plan a rolling update of the containers that use `image` onto `target_ref` (only
    `team`'s, when given: a team's scheduled rollout leaves other teams' containers alone)."""
    if source not in Rollout.Source.values:
        raise InvalidRequest(f"source must be one of {', '.join(Rollout.Source.values)}")
    target_ref = (target_ref or (image.repo_tags[:1] or [""])[0]).strip()
    if not target_ref:
        raise InvalidRequest("the image has no tag: name the target reference")
    live = list(_live(image.host_id))
    running = _images_on_host(image, acting_user, summary)
    users = [
        c
        for c in live
        if running.get(str(c.pk)) == image.image_id and (team is None or c.team_id == team.pk)
    ]
    if not users:
        raise Conflict(f"no live container on host {image.host.name} uses {image}")
    refused, allowed = [], []
    for container in users:
        decision = gate.decide(acting_user, "container.recreate", container)
        if not decision.allowed:
            gate.record(decision, summary=(summary or {}) | {"rollout": "plan"})
            refused.append(decision)
        allowed.append(decision)
    if refused:
        raise AccessDenied(refused[0])
    teams = {c.team_id for c in users}
    plan = [
        {
            "container": c.pk,
            "name": c.name,
            "state": "blocked" if _referenced(c, live) else "pending",
            "detail": "other containers join or link to it by id" if _referenced(c, live) else "",
            "new_container": None,
        }
        for c in users
    ]
    with transaction.atomic():
        rollout = Rollout.objects.create(
            host=image.host,
            team_id=teams.pop() if len(teams) == 1 else None,
            old_image_row=image,
            old_image_id=image.image_id,
            target_ref=target_ref,
            source=source,
            plan=plan,
            created_by=acting_user,
        )
        gate.record(
            dataclasses.replace(allowed[0], obj=rollout, resource="rollout"),
            summary=(summary or {}) | {"rollout": "plan", "containers": [c.name for c in users]},
        )
    return rollout


def _save(rollout: Rollout, **fields) -> None:
    for name, value in fields.items():
        setattr(rollout, name, value)
    Rollout.objects.filter(pk=rollout.pk).update(**fields)


def _summary(rollout, container=None, **extra) -> dict:
    out = {"rollout": rollout.pk, "target": rollout.target_ref}
    if container is not None:
        out["container"] = container.name
    return out | extra


def _step(rollout, container, kind, action, acting_user, params, *, check=True):
    """One audited operation on the rollout's host, waited for."""
    summary = _summary(rollout, container, step=kind)
    decision = steps.audited(acting_user, action, container, summary)
    with transaction.atomic():
        op = steps.new_operation(
            kind, container.host, container.team, "container", container.pk, acting_user, params
        )
        gate.record(decision, summary=summary, operation=op)
    return steps.run(op, f"{kind} of {container.name}", check=check)


def _new_image(rollout: Rollout, acting_user) -> str:
    """The image id the target names on the host after the source step."""
    host = rollout.host
    if rollout.source == Rollout.Source.PULL:
        probe = Image(host=host, team=rollout.team)
        summary = _summary(rollout, step="image.pull", ref=rollout.target_ref)
        decision = steps.audited(acting_user, "image.pull", probe, summary)
        with transaction.atomic():
            op = steps.new_operation(
                "image.pull",
                host,
                rollout.team,
                "image",
                "",
                acting_user,
                {"ref": rollout.target_ref, "private": rollout.team_id is not None},
            )
            gate.record(decision, summary=summary, operation=op)
        op = steps.run(op, f"pull of {rollout.target_ref}")
        return op.result.get("image_id") or ""
    wanted = {rollout.target_ref, lookups.normalize_ref(rollout.target_ref)}
    found = [
        image
        for image in Image.objects.filter(host=host).order_by("-pk")
        if wanted & set(image.repo_tags or []) or image.image_id == rollout.target_ref
    ]
    # A rebuilt tag may still be listed on the old row until the host's tags are synced: the
    # newest other row carrying the tag is the one the tag now names.
    newer = [image for image in found if image.image_id != rollout.old_image_id]
    if newer or found:
        return (newer or found)[0].image_id
    raise steps.StepFailed(f"{rollout.target_ref} is not an image on host {host.name}")


def _wait_healthy(rollout, new, acting_user) -> None:
    """Raise StepFailed unless `new` keeps running (and passes its health check, if any)."""
    time.sleep(_settle_seconds())
    result = {}
    for attempt in range(HEALTH_TRIES):
        op = _step(rollout, new, "rollout.observe", "container.view", acting_user, {})
        result = op.result or {}
        if not result.get("running"):
            raise steps.StepFailed(
                f"the new container is {result.get('status')} "
                f"(exit code {result.get('exit_code')}) instead of running"
            )
        if result.get("healthy") in (None, True):
            return
        if attempt < HEALTH_TRIES - 1:
            time.sleep(1)
    raise steps.StepFailed(f"the new container fails its health check: {result.get('output', '')}")


def _recreate(rollout, old: Container, acting_user) -> Container:
    """Create the replacement of `old` (already renamed aside) under its name, started."""
    spec = dict(old.spec)
    spec["image"] = rollout.target_ref
    spec["name"] = old.spec.get("name") or old.name
    new = Container(
        team=old.team,
        host=old.host,
        name=spec["name"],
        image=rollout.target_ref,
        spec=spec,
        labels=dict(old.labels or {}),
        desired_state=Container.Desired.RUNNING,
        created_by=old.created_by,
    )
    summary = audit_summary_of_spec(_summary(rollout, old, step="container.create", spec=spec))
    # The gate checks the spec again (policy, image ownership, volumes, references).
    decision = gate.decide(acting_user, "container.create", new, options=spec)
    if not decision.allowed:
        gate.record(decision, summary=summary)
        raise steps.StepFailed(f"the new container is not allowed: {decision.reason}")
    with transaction.atomic():
        new.save(force_insert=True)
        op = steps.new_operation(
            "container.create",
            old.host,
            old.team,
            "container",
            new.pk,
            acting_user,
            {"start": True},
        )
        gate.record(decision, summary=summary, operation=op)
    try:
        steps.run(op, f"create of the new {new.name}")
    except steps.StepFailed:
        new.refresh_from_db()
        raise _Created(new) from None
    new.refresh_from_db()
    return new


class _Created(steps.StepFailed):
    """The new container's row exists but it failed to start: it must be removed."""

    def __init__(self, container):
        super().__init__(f"the new container {container.name} did not start: {container.error}")
        self.container = container


def _roll_one(rollout, entry, acting_user) -> None:
    """Replace one container; on failure put the old one back and raise StepFailed."""
    old = Container.objects.select_related("team", "host", "created_by").get(pk=entry["container"])
    name = old.name
    was_running = old.desired_state in (Container.Desired.RUNNING, Container.Desired.PAUSED)
    decision = steps.audited(
        acting_user, "container.recreate", old, _summary(rollout, old, step="start")
    )
    gate.record(decision, summary=_summary(rollout, old, step="start"))
    aside = f"{name[:100]}-rollout{rollout.pk}"
    if was_running:
        # Desired stopped first, so that no reconciler starts it again behind the rollout.
        Container.objects.filter(pk=old.pk).update(desired_state=Container.Desired.STOPPED)
        _step(rollout, old, "container.stop", "container.stop", acting_user, {"timeout": 10})
    _step(rollout, old, "container.rename", "container.change", acting_user, {"new": aside})
    Container.objects.filter(pk=old.pk).update(spec={**old.spec, "name": aside})
    old.refresh_from_db()
    new = None
    try:
        new = _recreate(rollout, old_with_name(old, name), acting_user)
        _wait_healthy(rollout, new, acting_user)
    except steps.StepFailed as err:
        failed = getattr(err, "container", None) or new
        if failed is not None:
            _step(
                rollout,
                failed,
                "container.remove",
                "container.delete",
                acting_user,
                {"force": True},
                check=False,
            )
            Container.objects.filter(pk=failed.pk).update(desired_state=Container.Desired.REMOVED)
        _step(rollout, old, "container.rename", "container.change", acting_user, {"new": name})
        Container.objects.filter(pk=old.pk).update(spec={**old.spec, "name": name})
        old.refresh_from_db()
        if was_running:
            Container.objects.filter(pk=old.pk).update(desired_state=Container.Desired.RUNNING)
            _step(rollout, old, "container.start", "container.start", acting_user, {}, check=False)
        raise
    _step(rollout, old, "container.remove", "container.delete", acting_user, {"force": True})
    Container.objects.filter(pk=old.pk).update(desired_state=Container.Desired.REMOVED)
    entry["new_container"] = new.pk


def old_with_name(old: Container, name: str) -> Container:
    """`old` as the template of its replacement: its original name and spec."""
    template = Container(
        pk=old.pk,
        team=old.team,
        host=old.host,
        name=name,
        image=old.image,
        spec={**old.spec, "name": name},
        labels=old.labels,
        created_by=old.created_by,
    )
    return template


def do_start(rollout: Rollout, *, acting_user, summary=None) -> Rollout:
    """Run a planned rollout now; returns it finished (succeeded, failed or up to date)."""
    claimed = Rollout.objects.filter(pk=rollout.pk, state=Rollout.State.PLANNED).update(
        state=Rollout.State.RUNNING, started_at=timezone.now()
    )
    if not claimed:
        raise Conflict(f"rollout {rollout.pk} is {rollout.state}, not planned")
    rollout.refresh_from_db()
    try:
        new_image = _new_image(rollout, acting_user)
    except Exception as err:
        _save(rollout, state=Rollout.State.FAILED, error=str(err), finished_at=timezone.now())
        if isinstance(err, steps.StepFailed):
            return rollout
        raise
    if new_image == rollout.old_image_id:
        _save(
            rollout,
            state=Rollout.State.UP_TO_DATE,
            new_image_id=new_image,
            finished_at=timezone.now(),
        )
        return rollout
    _save(rollout, new_image_id=new_image)
    plan = [dict(e) for e in rollout.plan]
    for entry in plan:
        if entry["state"] != "pending":
            continue
        if not _live(rollout.host_id).filter(pk=entry["container"]).exists():
            entry.update(state="skipped", detail="removed since the plan was made")
            _save(rollout, plan=plan)
            continue
        try:
            _roll_one(rollout, entry, acting_user)
        except Exception as err:
            if not isinstance(err, steps.StepFailed):
                # Broker or database trouble: say where it stopped, never leave it "running".
                entry.update(state="failed", detail=str(err)[:500])
                _save(
                    rollout,
                    plan=plan,
                    state=Rollout.State.FAILED,
                    error=f"{entry['name']}: {err}",
                    finished_at=timezone.now(),
                )
                raise
            entry.update(state="rolled_back", detail=str(err)[:500])
            _save(
                rollout,
                plan=plan,
                state=Rollout.State.FAILED,
                error=f"{entry['name']}: {err}",
                finished_at=timezone.now(),
            )
            return rollout
        entry.update(state="updated", detail="")
        _save(rollout, plan=plan)
    _save(rollout, state=Rollout.State.SUCCEEDED, finished_at=timezone.now())
    return rollout
