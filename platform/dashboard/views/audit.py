"""The audit log viewer: filters, pagination and export (CSV or JSON) of what the gate allows."""

import csv
import json
from datetime import datetime, time

from django.core.paginator import Paginator
from django.http import StreamingHttpResponse
from django.shortcuts import render
from django.utils import timezone

from audit.models import AuditEvent
from dashboard.decorators import gated
from dashboard.permissions import visible

PAGE_SIZE = 100
EXPORT_FIELDS = (
    "seq",
    "time",
    "actor",
    "impersonator",
    "action",
    "object_type",
    "object_id",
    "object_repr",
    "outcome",
    "reason",
    "source_ip",
    "request_id",
    "operation_id",
    "task_id",
    "summary",
    "prev_hash",
    "hash",
)
OUTCOMES = [choice for choice, _ in AuditEvent.Outcome.choices]


def _day(text: str, end: bool = False):
    try:
        day = datetime.strptime(text, "%Y-%m-%d").date()
    except ValueError:
        return None
    return timezone.make_aware(datetime.combine(day, time.max if end else time.min), timezone.UTC)


def filtered(request):
    """Events the user may read, narrowed by actor, action, object, outcome and dates."""
    params = request.GET
    filters = {
        k: params.get(k, "").strip()
        for k in (
            "actor",
            "action",
            "object_type",
            "object_id",
            "outcome",
            "since",
            "until",
            "request_id",
        )
    }
    qs = visible(AuditEvent.objects.all(), request.user, "audit.read")
    if filters["actor"]:
        qs = qs.filter(actor=filters["actor"])
    if filters["action"]:
        qs = qs.filter(action__startswith=filters["action"])
    if filters["object_type"]:
        qs = qs.filter(object_type=filters["object_type"])
    if filters["object_id"]:
        qs = qs.filter(object_id=filters["object_id"])
    if filters["outcome"] in OUTCOMES:
        qs = qs.filter(outcome=filters["outcome"])
    if filters["request_id"]:
        qs = qs.filter(request_id=filters["request_id"])
    since, until = _day(filters["since"]), _day(filters["until"], end=True)
    if since:
        qs = qs.filter(time__gte=since)
    if until:
        qs = qs.filter(time__lte=until)
    return qs.order_by("-seq"), filters


@gated("audit.read")
def audit_log(request):
    """The newest events first, 100 a page."""
    qs, filters = filtered(request)
    page = Paginator(qs, PAGE_SIZE).get_page(request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    context = {"page": page, "filters": filters, "outcomes": OUTCOMES, "query": query.urlencode()}
    return render(request, "dashboard/audit.html", context)


class _Echo:
    def write(self, value):
        return value


def _row(event) -> dict:
    row = {name: getattr(event, name) for name in EXPORT_FIELDS}
    row["time"] = event.time.isoformat()
    return row


@gated("audit.read")
def audit_export(request):
    """The filtered events as CSV (default) or JSON lines, streamed so a large log costs no memory."""
    qs, _ = filtered(request)
    rows = (_row(e) for e in qs.iterator(chunk_size=2000))
    if request.GET.get("format") == "json":
        body = (json.dumps(row, default=str) + "\n" for row in rows)
        response = StreamingHttpResponse(body, content_type="application/x-ndjson")
        response["Content-Disposition"] = 'attachment; filename="berth-audit.jsonl"'
        return response
    writer = csv.writer(_Echo())

    def lines():
        yield writer.writerow(EXPORT_FIELDS)
        for row in rows:
            yield writer.writerow(
                [json.dumps(row[f]) if isinstance(row[f], dict) else row[f] for f in EXPORT_FIELDS]
            )

    response = StreamingHttpResponse(lines(), content_type="text/csv")
    response["Content-Disposition"] = 'attachment; filename="berth-audit.csv"'
    return response
