"""/api/v1/audit/: query, filter and export (CSV, JSON) the audit log."""

import csv
import json

import django_filters
from django.http import StreamingHttpResponse
from rest_framework import serializers
from rest_framework.decorators import action

from api.base import GatedListMixin, GatedRetrieveMixin, GatedViewSet
from audit.models import AuditEvent

EXPORT_FIELDS = [
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
]
EXPORT_LIMIT = 100_000


class AuditEventSerializer(serializers.ModelSerializer):
    """An audit event (read only)."""

    class Meta:
        model = AuditEvent
        fields = ["id", *EXPORT_FIELDS, "actor_id"]
        read_only_fields = fields


class AuditFilter(django_filters.FilterSet):
    """?actor=&action=&outcome=&object_type=&object_id=&request_id=&since=&until=."""

    since = django_filters.IsoDateTimeFilter(field_name="time", lookup_expr="gte")
    until = django_filters.IsoDateTimeFilter(field_name="time", lookup_expr="lt")
    action = django_filters.CharFilter(field_name="action")
    action_prefix = django_filters.CharFilter(field_name="action", lookup_expr="startswith")

    class Meta:
        model = AuditEvent
        fields = [
            "actor",
            "actor_id",
            "action",
            "outcome",
            "object_type",
            "object_id",
            "request_id",
            "operation_id",
        ]


class _Echo:
    def write(self, value):
        return value


def _csv_rows(queryset):
    writer = csv.writer(_Echo())
    yield writer.writerow(EXPORT_FIELDS)
    for event in queryset.iterator(chunk_size=1000):
        row = []
        for name in EXPORT_FIELDS:
            value = getattr(event, name)
            row.append(
                json.dumps(value, sort_keys=True)
                if name == "summary"
                else ""
                if value is None
                else value
            )
        yield writer.writerow(row)


def _json_rows(queryset):
    yield "["
    for index, event in enumerate(queryset.iterator(chunk_size=1000)):
        data = {name: getattr(event, name) for name in EXPORT_FIELDS}
        data["time"] = event.time.isoformat()
        yield ("," if index else "") + json.dumps(data, sort_keys=True, default=str)
    yield "]"


class AuditEventViewSet(GatedListMixin, GatedRetrieveMixin, GatedViewSet):
    """The audit log, newest first (auditors and admins)."""

    resource = "audit"
    view_action = "audit.read"
    gate_actions = {"list": "audit.read", "retrieve": "audit.read", "export": "audit.read"}
    queryset = AuditEvent.objects.all()
    serializer_class = AuditEventSerializer
    filterset_class = AuditFilter
    search_fields = ["actor", "action", "object_repr", "reason"]
    ordering_fields = ["seq", "time"]
    ordering = ["-seq"]

    @action(detail=False, methods=["get"])
    def export(self, request):
        """Download the filtered log: ?export_format=csv (default) or json."""
        fmt = request.query_params.get("export_format", "csv")
        if fmt not in ("csv", "json"):
            from config.errors import InvalidRequest

            raise InvalidRequest("export_format must be csv or json")
        self.authorize()
        queryset = self.filter_queryset(self.get_queryset()).order_by("seq")[:EXPORT_LIMIT]
        if fmt == "csv":
            response = StreamingHttpResponse(
                _csv_rows(queryset), content_type="text/csv; charset=utf-8"
            )
        else:
            response = StreamingHttpResponse(_json_rows(queryset), content_type="application/json")
        response["Content-Disposition"] = f'attachment; filename="berth-audit.{fmt}"'
        return response
