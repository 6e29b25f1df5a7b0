"""Narrowing and exporting the audit log: one implementation for the REST API and the dashboard.

Both callers pass a queryset that the gate already restricted to what the user may read.
"""

import csv
import json
from datetime import UTC, datetime, time, timedelta

from django.utils import timezone

from audit.models import AuditEvent
from config.errors import InvalidRequest

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
# Query parameters: exact matches on a field, unless named otherwise below.
EXACT = ("actor", "action", "object_type", "object_id", "request_id")
NUMBERS = ("actor_id", "operation_id")
FILTERS = (*EXACT, *NUMBERS, "action_prefix", "outcome", "since", "until")
OUTCOMES = tuple(choice for choice, _ in AuditEvent.Outcome.choices)


def _moment(name: str, text: str):
    """An ISO date-time (naive means UTC), or a date: `since` its start, `until` its end."""
    try:
        if len(text) == 10:
            day = datetime.strptime(text, "%Y-%m-%d").date()
            moment = datetime.combine(day, time.min)
            return timezone.make_aware(
                moment + timedelta(days=1) if name == "until" else moment, UTC
            )
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidRequest(f"{name}: expected YYYY-MM-DD or an ISO 8601 date-time") from None
    return moment if timezone.is_aware(moment) else timezone.make_aware(moment, UTC)


def filter_events(queryset, params) -> tuple:
    """Apply FILTERS from `params` (a QueryDict or dict); returns (queryset, the values used).

    `since` is inclusive, `until` exclusive (a date as `until` includes that whole day).
    Malformed values raise InvalidRequest rather than being ignored.
    """
    values = {name: str(params.get(name, "") or "").strip() for name in FILTERS}
    lookups = {name: values[name] for name in EXACT if values[name]}
    for name in NUMBERS:
        if values[name]:
            if not values[name].isdigit():
                raise InvalidRequest(f"{name} must be a number")
            lookups[name] = int(values[name])
    if values["action_prefix"]:
        lookups["action__startswith"] = values["action_prefix"]
    if values["outcome"]:
        if values["outcome"] not in OUTCOMES:
            raise InvalidRequest(f"outcome must be one of {', '.join(OUTCOMES)}")
        lookups["outcome"] = values["outcome"]
    if values["since"]:
        lookups["time__gte"] = _moment("since", values["since"])
    if values["until"]:
        lookups["time__lt"] = _moment("until", values["until"])
    return queryset.filter(**lookups), values


class _Echo:
    """A file-like object whose write() returns the line, for a streamed csv.writer."""

    def write(self, value):
        return value


def csv_lines(queryset):
    """The events as CSV lines with a header (summary as JSON, None as empty)."""
    writer = csv.writer(_Echo())
    yield writer.writerow(EXPORT_FIELDS)
    for event in queryset.iterator(chunk_size=1000):
        row = []
        for name in EXPORT_FIELDS:
            value = getattr(event, name)
            if name == "summary":
                value = json.dumps(value, sort_keys=True)
            row.append("" if value is None else value)
        yield writer.writerow(row)


def event_dict(event) -> dict:
    """One event as a JSON-ready dict of EXPORT_FIELDS (time in ISO 8601)."""
    data = {name: getattr(event, name) for name in EXPORT_FIELDS}
    data["time"] = event.time.isoformat()
    return data
