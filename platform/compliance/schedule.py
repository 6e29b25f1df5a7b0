"""Scheduled rolling updates for the teams that opted in (a RolloutSchedule each).

Beat sends `compliance.scheduled_rollouts` to the control queue; each pass takes the enabled
schedules whose window holds the current hour (UTC) and, acting as the user who opted the
team in (the gate decides every step with that user's permissions now), finds the team's
containers whose image has a newer one:

- rebuilt on the host: the container's tag names another image there now (a rebuild under
  the same tag, or Berth's own rebuild of a newer base): rolled out with source "none";
- with `pull`: the registry holds a newer digest under the tag (`rollout.check`): rolled out
  with source "pull"; and images the team built with Berth whose base image has a newer
  digest (`recipe.check`) are built again from their recipes first (compliance/recipes.py),
  which makes them "rebuilt on the host".

Each rollout is the ordinary one (rollouts.do_plan and do_start: one container at a time,
rolled back and stopped on failure), limited to the team's containers. An image whose
scheduled rollout failed in the last day is not tried again until a person looks. The pass
itself is audited (`compliance.run`, "scheduled rollouts") with what it did per team.
"""

from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from audit.services import record_event
from compliance import recipes, rollouts
from compliance.engine import normalize_ref
from compliance.models import Rollout, RolloutSchedule
from config.errors import PlatformError
from containers.models import Container
from containers.not_removed import NOT_REMOVED
from hosts import steps
from images.models import Image
from rbac import gate
from rbac.errors import AccessDenied

RETRY_AFTER = timedelta(days=1)


def set_schedule(team, fields: dict, acting_user, summary=None) -> tuple[RolloutSchedule, bool]:
    """Opt `team` in or change its schedule (container.recreate on the team, audited); the
    caller becomes the acting user. Returns (schedule, created)."""
    existing = RolloutSchedule.objects.filter(team=team).first()
    obj = existing or RolloutSchedule(team=team)
    decision = gate.require(
        acting_user, "container.recreate", obj, resource="compliance", summary=summary
    )
    with transaction.atomic():
        for name, value in fields.items():
            setattr(obj, name, value)
        obj.acting_user = acting_user
        obj.save()
        gate.record(decision, summary=(summary or {}) | {"schedule": fields, "team": team.name})
    return obj, existing is None


def remove_schedule(obj: RolloutSchedule, acting_user, summary=None) -> None:
    """Opt the team out (container.recreate on the team, audited)."""
    decision = gate.require(
        acting_user, "container.recreate", obj, resource="compliance", summary=summary
    )
    with transaction.atomic():
        gate.record(decision, summary=(summary or {}) | {"team": obj.team.name, "removed": True})
        obj.delete()


def due(now=None) -> list[RolloutSchedule]:
    """The enabled schedules whose window holds this hour."""
    now = now or timezone.now()
    schedules = RolloutSchedule.objects.filter(enabled=True).select_related("team", "acting_user")
    return [s for s in schedules if s.in_window(now.hour)]


def _team_containers(team):
    return (
        Container.objects.filter(team=team, host__revoked_at__isnull=True)
        .exclude(desired_state=Container.Desired.REMOVED)
        .filter(NOT_REMOVED)
        .select_related("host")
    )


def _tag_row(host_id, ref: str) -> Image | None:
    wanted = {ref, normalize_ref(ref)}
    for image in Image.objects.filter(host_id=host_id).order_by("-pk"):
        if wanted & set(image.repo_tags or []):
            return image
    return None


def _running_images(host, team, user) -> dict:
    """{container pk: image id} on one host (the host's own records; an audited step)."""
    return rollouts._images_on_host(Image(host=host, team=team), user, {"scheduled": True})


def _registry_newer(image: Image, ref: str, user) -> bool:
    """Does the registry hold a newer image under `ref` than `image`? (`rollout.check`)"""
    summary = {"scheduled": True, "image": image.image_id, "ref": ref}
    decision = steps.audited(user, "image.pull", image, summary)
    with transaction.atomic():
        op = steps.new_operation(
            "rollout.check", image.host, image.team, "image", image.pk, user, {"ref": ref}
        )
        gate.record(decision, summary=summary, operation=op)
    op = steps.run(op, f"registry check of {ref}")
    return bool(op.result.get("newer"))


def candidates(schedule: RolloutSchedule) -> list[tuple[Image, str, str, str]]:
    """(old image row, target ref, source, new image id or "" before a pull) for each image
    of the team that has a newer one."""
    user, team = schedule.acting_user, schedule.team
    by_host: dict = {}
    for container in _team_containers(team):
        by_host.setdefault(container.host_id, []).append(container)
    out, seen = [], set()
    for containers in by_host.values():
        host = containers[0].host
        running = _running_images(host, team, user)
        for container in containers:
            image_id = running.get(str(container.pk))
            ref = (container.spec or {}).get("image") or container.image
            if not image_id or (host.pk, image_id, ref) in seen:
                continue
            seen.add((host.pk, image_id, ref))
            old = Image.objects.filter(host=host, image_id=image_id).first()
            tagged = _tag_row(host.pk, ref)
            if old is None or tagged is None:
                continue  # run by id, or the tag is gone: nothing names a newer image
            if tagged.image_id != image_id:
                out.append((old, ref, Rollout.Source.NONE, tagged.image_id))
            elif schedule.pull and _registry_newer(old, ref, user):
                out.append((old, ref, Rollout.Source.PULL, ""))
    return out


def _recently_failed(old: Image, ref: str, new_id: str) -> bool:
    """A rollout from `old` to this target failed in the last day (to the same new image,
    when it is known): a newer build is tried, the same broken one is not."""
    failed = Rollout.objects.filter(
        old_image_id=old.image_id,
        host_id=old.host_id,
        target_ref=ref,
        state=Rollout.State.FAILED,
        created_at__gte=timezone.now() - RETRY_AFTER,
    )
    return (failed.filter(new_image_id=new_id) if new_id else failed).exists()


def _rebuild_on_newer_bases(schedule, summary, result) -> None:
    """Images the team built with Berth whose base has a newer digest are built again from
    their recipes first (the tag then names the new image, and the rollout below takes it)."""
    for recipe in recipes.latest_for_team(schedule.team):
        try:
            recipe = recipes.check(recipe, schedule.acting_user, summary)
            if recipe.base_newer:
                new_id = recipes.rebuild(recipe, schedule.acting_user, summary)
                result.setdefault("rebuilt", []).append({"tag": recipe.tag, "image_id": new_id})
        except (steps.StepFailed, PlatformError) as err:
            result["errors"].append(f"rebuild of {recipe.tag}: {getattr(err, 'message', err)}")


def run_schedule(schedule: RolloutSchedule) -> dict:
    """One team's pass: every due rollout planned and run; {rollouts, skipped, errors}."""
    user = schedule.acting_user
    result = {"rollouts": [], "skipped": [], "errors": []}
    if user is None or not user.is_active:
        result["errors"].append("the user who opted in is gone or inactive")
        return result
    summary = {"scheduled": True, "schedule": schedule.pk}
    if schedule.pull:
        _rebuild_on_newer_bases(schedule, summary, result)
    try:
        found = candidates(schedule)
    except (steps.StepFailed, PlatformError) as err:
        result["errors"].append(str(getattr(err, "message", err)))
        return result
    for old, ref, source, new_id in found:
        if _recently_failed(old, ref, new_id):
            result["skipped"].append(f"{ref} on {old.host.name}: failed in the last day")
            continue
        try:
            rollout = rollouts.do_plan(
                old,
                target_ref=ref,
                source=source,
                acting_user=user,
                summary=summary,
                team=schedule.team,
            )
            rollout = rollouts.do_start(rollout, acting_user=user, summary=summary)
        except AccessDenied as err:
            result["errors"].append(f"{ref}: refused: {err}")
            continue
        except PlatformError as err:
            result["errors"].append(f"{ref}: {err.message}")
            continue
        result["rollouts"].append({"id": rollout.pk, "ref": ref, "state": rollout.state})
    return result


def run_due(now=None) -> dict:
    """Every due team's pass, each audited; {team name: result}."""
    now = now or timezone.now()
    out = {}
    for schedule in due(now):
        result = run_schedule(schedule)
        RolloutSchedule.objects.filter(pk=schedule.pk).update(last_run_at=now, last_result=result)
        record_event(
            actor=schedule.acting_user,
            action="compliance.run",
            outcome="failed" if result["errors"] else "allowed",
            reason="scheduled rollouts (the team opted in)",
            object_type="team",
            object_id=schedule.team_id,
            object_repr=schedule.team.name,
            summary=result,
        )
        out[schedule.team.name] = result
    return out
