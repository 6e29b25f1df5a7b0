"""The compliance page of the dashboard: score per team, findings with filters, trend, export,
run now, exceptions. Every view is @gated and reads through the same queries as the API."""

import tempfile
from datetime import UTC, datetime, time

from django.contrib import messages
from django.core.paginator import Paginator
from django.db.models import Count, Q
from django.http import HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_POST

from accounts.models import Team
from compliance import queries, rollouts, schedule, services
from compliance.checks import CHECKS, for_target
from compliance.models import (
    BuildRecipe,
    ComplianceException,
    ComplianceRun,
    ImageInventory,
    OsvImport,
    Rollout,
    RolloutSchedule,
)
from compliance.models.findings import SEVERITY_ORDER
from config.errors import InvalidRequest
from dashboard.decorators import gated
from dashboard.permissions import get_visible, may, visible
from images.models import Image
from rbac import gate

PAGE_SIZE = 50


def _summary(request, **extra) -> dict:
    return {"method": request.method, "path": request.path, "via": "dashboard"} | extra


def _trend_points(trend: list[dict]) -> str:
    """SVG polyline points for the score trend (x: run index, y: 0..100 inverted)."""
    if len(trend) < 2:
        return ""
    step = 300 / (len(trend) - 1)
    return " ".join(f"{i * step:.1f},{100 - t['score']:.1f}" for i, t in enumerate(trend))


@gated("compliance.view")
def compliance_page(request):
    """Scores, findings (filtered), trend and exceptions."""
    params = request.GET
    run = queries.pick_run(params)
    rows = queries.sort_by_severity(queries.findings(request.user, params))
    page = Paginator(rows, PAGE_SIZE).get_page(params.get("page"))
    scores = list(queries.scores(request.user, run))
    by_severity = {s: 0 for s in SEVERITY_ORDER}
    for score in scores:
        for severity, count in (score.by_severity or {}).items():
            by_severity[severity] = by_severity.get(severity, 0) + count
    trend = queries.trend(request.user)
    keep = params.copy()
    keep.pop("page", None)
    for_target("container")  # loads the registry
    exceptions = visible(
        ComplianceException.objects.select_related("team", "created_by"),
        request.user,
        "compliance.view",
    )[:50]
    images = visible(
        ImageInventory.objects.select_related("image", "host", "team"),
        request.user,
        "compliance.view",
    ).annotate(
        critical=Count("advisories", filter=Q(advisories__severity="critical")),
        high=Count("advisories", filter=Q(advisories__severity="high")),
        total=Count("advisories"),
    )[:100]
    return render(
        request,
        "compliance/page.html",
        {
            "run": run,
            "page": page,
            "scores": scores,
            "by_severity": by_severity,
            "severities": list(SEVERITY_ORDER),
            "trend": trend,
            "trend_points": _trend_points(trend),
            "filters": params,
            "query": keep.urlencode(),
            "checks": CHECKS,
            "exceptions": exceptions,
            "inventories": images,
            "rollouts": visible(
                Rollout.objects.select_related("host"), request.user, "compliance.view"
            )[:20],
            "can_roll": may(request.user, "container.recreate"),
            "images": visible(Image.objects.select_related("host"), request.user, "image.view")[
                :200
            ],
            "schedules": visible(
                RolloutSchedule.objects.select_related("team", "acting_user"),
                request.user,
                "compliance.view",
            ),
            "recipes": visible(
                BuildRecipe.objects.select_related("host"), request.user, "compliance.view"
            )[:50],
            "last_import": OsvImport.objects.first(),
            "can_run": may(request.user, "compliance.run"),
            "can_except": may(request.user, "compliance.except"),
            "now": timezone.now(),
        },
    )


@gated("compliance.view")
def compliance_export(request, fmt):
    """The filtered findings as CSV or JSON (same filters as the page)."""
    rows = queries.sort_by_severity(queries.findings(request.user, request.GET))
    if fmt == "csv":
        response = HttpResponse(queries.to_csv(rows), content_type="text/csv")
        response["Content-Disposition"] = 'attachment; filename="compliance-findings.csv"'
        return response
    if fmt != "json":
        raise InvalidRequest("export format must be csv or json")
    response = JsonResponse([queries.finding_dict(f) for f in rows], safe=False)
    response["Content-Disposition"] = 'attachment; filename="compliance-findings.json"'
    return response


@require_POST
@gated("compliance.run")
def compliance_run(request):
    """Run every check now."""
    run = services.run_compliance(
        trigger=ComplianceRun.Trigger.MANUAL, acting_user=request.user, summary=_summary(request)
    )
    messages.success(request, f"Compliance run {run.pk}: {run.failed} failed checks.")
    return redirect("compliance:page")


def _expiry(text: str):
    """A date (YYYY-MM-DD, end of that day UTC) or an ISO datetime; None when empty."""
    text = (text or "").strip()
    if not text:
        return None
    try:
        if len(text) == 10:
            day = datetime.fromisoformat(text).date()
            return datetime.combine(day, time(23, 59, 59), tzinfo=UTC)
        value = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidRequest(f"expiry {text!r} is not a date (YYYY-MM-DD)") from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


@require_POST
@gated("compliance.except")
def exception_create(request):
    """Grant an exception from the form (reason and expiry required)."""
    data = request.POST
    services.do_grant_exception(
        check_id=data.get("check_id", ""),
        object_type=data.get("object_type", ""),
        object_id=data.get("object_id", ""),
        reason=data.get("reason", ""),
        expires_at=_expiry(data.get("expires_at", "")),
        acting_user=request.user,
        summary=_summary(request),
    )
    messages.success(request, "Exception granted; the next run counts it.")
    return redirect("compliance:page")


@require_POST
@gated("compliance.except")
def exception_revoke(request, pk):
    """Revoke an exception."""
    exc = get_visible(
        ComplianceException.objects.all(), request.user, pk, "compliance.view", "compliance"
    )
    services.do_revoke_exception(exc, acting_user=request.user, summary=_summary(request))
    messages.success(request, "Exception revoked.")
    return redirect("compliance:page")


@require_POST
@gated("compliance.run")
def osv_import(request):
    """Import an uploaded OSV export zip and match every inventory again."""
    upload = request.FILES.get("file")
    if upload is None:
        raise InvalidRequest("choose an OSV export (.zip) to import")
    with tempfile.NamedTemporaryFile(suffix=".zip") as tmp:
        for chunk in upload.chunks():
            tmp.write(chunk)
        tmp.flush()
        result, matches = services.do_import_osv(
            tmp.name, filename=upload.name, acting_user=request.user, summary=_summary(request)
        )
    messages.success(
        request,
        f"OSV import: {result.imported} advisories imported, {result.skipped} malformed records "
        f"skipped; {matches} matches on images.",
    )
    return redirect("compliance:page")


@require_POST
@gated("container.recreate")
def rollout_plan(request):
    """Plan a rolling update of the containers of one image (shown before anything starts)."""
    pk = request.POST.get("image", "")
    if not pk.isdigit():
        raise InvalidRequest("choose an image")
    image = get_visible(
        Image.objects.select_related("host"), request.user, pk, "image.view", "image"
    )
    rollout = rollouts.do_plan(
        image,
        target_ref=request.POST.get("target", ""),
        source=request.POST.get("source", "none"),
        acting_user=request.user,
        summary=_summary(request),
    )
    messages.success(
        request,
        f"Rollout {rollout.pk} planned: {len(rollout.plan)} container(s); review, then start.",
    )
    return redirect("compliance:page")


@require_POST
@gated("container.recreate")
def rollout_start(request, pk):
    """Start a planned rollout (one container at a time; the page shows the outcome)."""
    rollout = get_visible(Rollout.objects.all(), request.user, pk, "compliance.view", "compliance")
    gate.authorize(request.user, "container.recreate", rollout, summary=_summary(request))
    rollout = rollouts.do_start(rollout, acting_user=request.user, summary=_summary(request))
    level = messages.success if rollout.state in ("succeeded", "up_to_date") else messages.error
    level(request, f"Rollout {rollout.pk}: {rollout.state}. {rollout.error}")
    return redirect("compliance:page")


def _hour(value: str, name: str) -> int:
    if not (value.isascii() and value.isdigit() and 0 <= int(value) <= 23):
        raise InvalidRequest(f"{name} must be an hour from 0 to 23 (UTC)")
    return int(value)


@require_POST
@gated("container.recreate")
def schedule_set(request):
    """Opt a team in to scheduled rollouts (or change its window); audited."""
    team = Team.objects.filter(name=request.POST.get("team", "")).first()
    if team is None:
        raise InvalidRequest("choose a team")
    fields = {
        "window_start": _hour(request.POST.get("window_start", ""), "the window's start"),
        "window_end": _hour(request.POST.get("window_end", ""), "the window's end"),
        "pull": request.POST.get("pull") == "on",
        "enabled": True,
    }
    schedule.set_schedule(team, fields, request.user, _summary(request))
    messages.success(request, f"Team {team.name}: scheduled rollouts on, acting as you.")
    return redirect("compliance:page")


@require_POST
@gated("container.recreate")
def schedule_remove(request, pk):
    """Opt a team out of scheduled rollouts; audited."""
    obj = get_visible(
        RolloutSchedule.objects.select_related("team"),
        request.user,
        pk,
        "compliance.view",
        "compliance",
    )
    schedule.remove_schedule(obj, request.user, _summary(request))
    messages.success(request, f"Team {obj.team.name}: scheduled rollouts off.")
    return redirect("compliance:page")
