"""Compliance state changes: run the checks and store the results, grant and revoke exceptions.

Every change goes through the gate and writes its audit event in the same transaction.
"""

import dataclasses
import time
from datetime import timedelta

from django.db import transaction
from django.db.models import Count
from django.utils import timezone

from audit.services import record_event
from compliance import engine
from compliance.checks import by_id
from compliance.models import (
    BuildRecipe,
    ComplianceException,
    ComplianceRun,
    Finding,
    ImageAdvisory,
    ImageInventory,
    TeamScore,
)
from config.errors import InvalidRequest, NotFound
from containers.models import Container
from containers.not_removed import NOT_REMOVED
from hosts.models import Host
from images.models import Image
from rbac import gate

# Findings of older runs are dropped (their counts stay in TeamScore, for the trend).
KEEP_FINDINGS_OF_RUNS = 10
MAX_EXCEPTION_DAYS = 366
OBJECT_TYPES = ("container", "image", "host", "token", "user", "site")


def active_exceptions(now) -> dict:
    """(check id, object type, object id) -> exception id, for the exceptions in force."""
    rows = ComplianceException.objects.filter(revoked_at__isnull=True, expires_at__gt=now)
    return {
        (check_id, object_type, object_id): pk
        for pk, check_id, object_type, object_id in rows.values_list(
            "pk", "check_id", "object_type", "object_id"
        )
    }


def load_rows():
    """(containers, images) as plain dicts: every live container, every image."""
    containers = list(
        Container.objects.exclude(desired_state=Container.Desired.REMOVED)
        .filter(NOT_REMOVED)
        .values("pk", "name", "team_id", "host_id", "spec", "image")
    )
    images = list(
        Image.objects.values(
            "pk", "host_id", "team_id", "image_id", "repo_tags", "config", "created"
        )
    )
    # What the image checks need of inventories and advisories: two grouped queries.
    states = {
        image_id: {"status": status, "error": error}
        for image_id, status, error in ImageInventory.objects.values_list(
            "image_id", "status", "error"
        )
    }
    advisories: dict = {}
    counted = (
        ImageAdvisory.objects.values("inventory__image_id", "severity")
        .annotate(n=Count("id"))
        .values_list("inventory__image_id", "severity", "n")
    )
    for image_id, severity, n in counted:
        advisories.setdefault(image_id, {})[severity] = n
    # Images built by Berth whose last recipe check found a newer base: one query.
    outdated: dict = {}
    for row_id, result in BuildRecipe.objects.filter(
        base_newer=True, image_row__isnull=False
    ).values_list("image_row_id", "check_result"):
        bases = [b["ref"] for b in (result or {}).get("bases", []) if b.get("newer")]
        outdated.setdefault(row_id, []).extend(bases)
    for image in images:
        image["inventory"] = states.get(image["pk"])
        image["advisories"] = advisories.get(image["pk"], {})
        image["base_newer"] = outdated.get(image["pk"], [])
    return containers, images


def evaluate_now(now=None) -> engine.Outcome:
    """Run every check over the current rows without storing anything."""
    now = now or timezone.now()
    containers, images = load_rows()
    return engine.evaluate(
        containers=containers, images=images, exceptions=active_exceptions(now), now=now
    )


def _store(run: ComplianceRun, outcome: engine.Outcome) -> None:
    Finding.objects.bulk_create(
        [
            Finding(
                run=run,
                check_id=r.check_id,
                severity=r.severity,
                object_type=r.object_type,
                object_id=r.object_id,
                object_repr=r.object_repr[:200],
                team_id=r.team_id,
                host_id=r.host_id,
                detail=r.detail,
                excepted=r.exception_id is not None,
                exception_id=r.exception_id,
            )
            for r in outcome.results
        ],
        batch_size=500,
    )
    TeamScore.objects.bulk_create(
        [
            TeamScore(
                run=run,
                team_id=team_id,
                evaluations=t.evaluations,
                failed=t.failed,
                excepted=t.excepted,
                by_severity=t.by_severity,
            )
            for team_id, t in outcome.tallies.items()
        ]
    )
    old = ComplianceRun.objects.order_by("-started_at", "-id").values_list("pk", flat=True)[
        KEEP_FINDINGS_OF_RUNS:
    ]
    Finding.objects.filter(run_id__in=list(old)).delete()


def run_compliance(*, trigger: str, acting_user=None, summary=None) -> ComplianceRun:
    """Run every check now and store the findings and team scores; returns the run.

    A person's run is decided by the gate (compliance.run) and audited with its decision; a
    scheduled or command run is audited as the system's.
    """
    decision = None
    if acting_user is not None:
        decision = gate.require(acting_user, "compliance.run", summary=summary)
    started = time.perf_counter()
    now = timezone.now()
    outcome = evaluate_now(now)
    with transaction.atomic():
        run = ComplianceRun.objects.create(
            trigger=trigger,
            started_by=acting_user,
            started_at=now,
            finished_at=timezone.now(),
            objects_checked=outcome.objects,
            evaluations=outcome.evaluations,
            failed=outcome.failed,
            excepted=outcome.excepted,
            duration_ms=int((time.perf_counter() - started) * 1000),
        )
        _store(run, outcome)
        result = {"run": run.pk, "failed": run.failed, "evaluations": run.evaluations}
        if decision is not None:
            gate.record(decision, summary=(summary or {}) | result)
        else:
            record_event(
                action="compliance.run",
                outcome=gate.ALLOWED,
                reason=f"{trigger} run",
                object_type="compliance",
                object_id=run.pk,
                summary=result,
            )
    return run


def latest_run() -> ComplianceRun | None:
    """The newest finished run."""
    return ComplianceRun.objects.filter(finished_at__isnull=False).first()


# Exceptions ---------------------------------------------------------------------------------


def _target(object_type: str, object_id: str):
    """(team id, host id, repr) of the object an exception is for; NotFound when it is gone."""
    if object_type == "container":
        row = Container.objects.filter(pk=_int(object_id)).values("team_id", "host_id", "name")
        row = row.first()
        if row:
            return row["team_id"], row["host_id"], row["name"]
    elif object_type == "image":
        image = Image.objects.filter(pk=_int(object_id)).first()
        if image:
            return image.team_id, image.host_id, str(image)
    elif object_type == "host":
        host = Host.objects.filter(pk=_int(object_id)).first()
        if host:
            return None, host.pk, host.name
    elif object_type in ("site", "token", "user"):
        return None, None, f"{object_type} {object_id}"
    raise NotFound(f"no {object_type} {object_id}")


def _int(text) -> int:
    text = str(text)
    return int(text) if text.isascii() and text.isdigit() and len(text) < 19 else -1


def _must_see(user, object_type: str, object_id: str, summary) -> None:
    """Another team's container or image answers 404 like a missing one (no probing of ids)."""
    model, action = {
        "container": (Container, "container.view"),
        "image": (Image, "image.view"),
    }.get(object_type, (None, None))
    if model is None:
        return
    if not gate.restrict(model.objects.filter(pk=_int(object_id)), user, action).exists():
        gate.not_visible(user, "compliance.except", object_type, object_id, summary=summary)


def validate_exception(*, check_id, object_type, object_id, reason, expires_at, now=None):
    """Refuse an exception without a known check, a reason or a sensible expiry (400)."""
    now = now or timezone.now()
    check = by_id(check_id or "")
    if check is None:
        raise InvalidRequest(f"unknown compliance check {check_id!r}")
    if object_type not in OBJECT_TYPES:
        raise InvalidRequest(f"object_type must be one of {', '.join(OBJECT_TYPES)}")
    if check.target != "site" and object_type != check.target:
        raise InvalidRequest(f"check {check.id} applies to {check.target}s, not {object_type}s")
    if not str(object_id or "").strip():
        raise InvalidRequest("object_id is required")
    if not (reason or "").strip():
        raise InvalidRequest("an exception needs a reason")
    if expires_at is None:
        raise InvalidRequest("an exception needs an expiry (expires_at)")
    if expires_at <= now:
        raise InvalidRequest("expires_at must be in the future")
    if expires_at > now + timedelta(days=MAX_EXCEPTION_DAYS):
        raise InvalidRequest(f"an exception may last at most {MAX_EXCEPTION_DAYS} days")


def do_grant_exception(
    *, check_id, object_type, object_id, reason, expires_at, acting_user, summary=None
) -> ComplianceException:
    """Let `check_id` fail on one object until `expires_at`; decided on the object's scope."""
    validate_exception(
        check_id=check_id,
        object_type=object_type,
        object_id=object_id,
        reason=reason,
        expires_at=expires_at,
    )
    team_id, host_id, label = _target(object_type, str(object_id))
    _must_see(acting_user, object_type, str(object_id), summary)
    exc = ComplianceException(
        check_id=check_id,
        object_type=object_type,
        object_id=str(object_id),
        object_repr=label[:200],
        team_id=team_id,
        host_id=host_id,
        reason=reason.strip()[:500],
        expires_at=expires_at,
        created_by=acting_user,
    )
    summary = (summary or {}) | {
        "check": check_id,
        "object": f"{object_type} {object_id}",
        "reason": exc.reason,
        "expires_at": expires_at.isoformat(),
    }
    decision = gate.require(acting_user, "compliance.except", exc, summary=summary)
    with transaction.atomic():
        exc.save(force_insert=True)
        gate.record(dataclasses.replace(decision, obj=exc), summary=summary)
    return exc


def do_revoke_exception(exc: ComplianceException, *, acting_user, summary=None):
    """End an exception now (the next run counts the failure again)."""
    decision = gate.require(acting_user, "compliance.except", exc, summary=summary)
    with transaction.atomic():
        ComplianceException.objects.filter(pk=exc.pk, revoked_at__isnull=True).update(
            revoked_at=timezone.now()
        )
        gate.record(decision, summary=(summary or {}) | {"revoked": exc.pk})
    exc.refresh_from_db()
    return exc


# Known vulnerabilities ----------------------------------------------------------------------


def do_import_osv(path, *, filename: str, acting_user=None, summary=None):
    """Import an OSV export zip and match every inventory again; returns (OsvImport, matches).

    People need a global compliance.run (the advisories serve every team); the command runs
    as the system. Refusals and failures are audited like successes.
    """
    from compliance import matching, osv
    from compliance.models import OsvImport

    decision = None
    if acting_user is not None:
        decision = gate.require(acting_user, "compliance.run", OsvImport(), summary=summary)
    try:
        result = osv.import_archive(path, filename=filename, acting_user=acting_user)
    except InvalidRequest as err:
        if decision is not None:
            gate.record(decision, summary=summary, outcome=gate.FAILED, reason=err.message)
        raise
    matches = matching.rematch_all()
    facts = {
        "import": result.pk,
        "file": filename[:200],
        "imported": result.imported,
        "skipped": result.skipped,
        "matches": matches,
    }
    if decision is not None:
        gate.record(dataclasses.replace(decision, obj=result), summary=(summary or {}) | facts)
    else:
        record_event(
            action="compliance.run",
            outcome=gate.ALLOWED,
            reason="OSV import from the command line",
            object_type="compliance",
            object_id=result.pk,
            object_repr=str(result),
            summary=facts,
        )
    return result, matches
