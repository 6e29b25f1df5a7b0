"""/api/v1/audit/: query, filter and export (CSV, JSON) the audit log."""

import json

from django.http import StreamingHttpResponse
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import serializers
from rest_framework.decorators import action

from api.base import GatedListMixin, GatedRetrieveMixin, GatedViewSet
from audit import journal
from audit.filtering import EXPORT_FIELDS, FILTERS, csv_lines, event_dict, filter_events
from audit.models import AuditEvent
from config.errors import InvalidRequest

EXPORT_LIMIT = 100_000
FILTER_PARAMETERS = [OpenApiParameter(name, str, description="audit filter") for name in FILTERS]


class AuditEventSerializer(serializers.ModelSerializer):
    """An audit event (read only)."""

    class Meta:
        model = AuditEvent
        fields = ["id", *EXPORT_FIELDS, "actor_id"]
        read_only_fields = fields


def _json_rows(queryset):
    yield "["
    for index, event in enumerate(queryset.iterator(chunk_size=1000)):
        yield ("," if index else "") + json.dumps(event_dict(event), sort_keys=True, default=str)
    yield "]"


@extend_schema_view(
    list=extend_schema(parameters=FILTER_PARAMETERS),
    export=extend_schema(parameters=FILTER_PARAMETERS),
)
class AuditEventViewSet(GatedListMixin, GatedRetrieveMixin, GatedViewSet):
    """The audit log, newest first (auditors and admins)."""

    resource = "audit"
    view_action = "audit.read"
    gate_actions = {"list": "audit.read", "retrieve": "audit.read", "export": "audit.read"}
    queryset = AuditEvent.objects.all()
    serializer_class = AuditEventSerializer
    search_fields = ["actor", "action", "object_repr", "reason"]
    ordering_fields = ["seq", "time"]
    ordering = ["-seq"]

    def get_queryset(self):
        # This process's journaled events first (audit/journal.py).
        journal.flush_pending()
        return super().get_queryset()

    def filter_queryset(self, queryset):
        """?actor=&action=&action_prefix=&outcome=&object_type=&object_id=&since=&until=..."""
        queryset, _ = filter_events(queryset, self.request.query_params)
        return super().filter_queryset(queryset)

    @action(detail=False, methods=["get"])
    def export(self, request):
        """Download the filtered log: ?export_format=csv (default) or json."""
        fmt = request.query_params.get("export_format", "csv")
        if fmt not in ("csv", "json"):
            raise InvalidRequest("export_format must be csv or json")
        self.authorize()
        queryset = self.filter_queryset(self.get_queryset()).order_by("seq")[:EXPORT_LIMIT]
        if fmt == "csv":
            response = StreamingHttpResponse(
                csv_lines(queryset), content_type="text/csv; charset=utf-8"
            )
        else:
            response = StreamingHttpResponse(_json_rows(queryset), content_type="application/json")
        response["Content-Disposition"] = f'attachment; filename="berth-audit.{fmt}"'
        return response
