"""The audit log viewer: filters, pagination and export (CSV or JSON) of what the gate allows."""

import json

from django.core.paginator import Paginator
from django.http import StreamingHttpResponse
from django.shortcuts import render

from audit import journal
from audit.filtering import OUTCOMES, csv_lines, event_dict, filter_events
from audit.models import AuditEvent
from dashboard.decorators import gated
from dashboard.permissions import visible

PAGE_SIZE = 100


def filtered(request):
    """Events the user may read, narrowed by audit.filtering (the API's filters), newest first."""
    journal.flush_pending()  # this process's journaled events first (audit/journal.py)
    qs = visible(AuditEvent.objects.all(), request.user, "audit.read")
    qs, filters = filter_events(qs, request.GET)
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


@gated("audit.read")
def audit_export(request):
    """The filtered events as CSV (default) or JSON lines, streamed so a large log costs no memory."""
    qs, _ = filtered(request)
    if request.GET.get("format") == "json":
        body = (json.dumps(event_dict(e), default=str) + "\n" for e in qs.iterator(chunk_size=2000))
        response = StreamingHttpResponse(body, content_type="application/x-ndjson")
        response["Content-Disposition"] = 'attachment; filename="berth-audit.jsonl"'
        return response
    response = StreamingHttpResponse(csv_lines(qs), content_type="text/csv")
    response["Content-Disposition"] = 'attachment; filename="berth-audit.csv"'
    return response
