"""/api/v1/compliance/: checks, runs (start one), findings (filters, export), scores, exceptions."""

from django.http import HttpResponse
from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.decorators import action
from rest_framework.response import Response

from api.base import GatedListMixin, GatedRetrieveMixin, GatedViewSet
from compliance import queries, services
from compliance.api.serializers import (
    CheckSerializer,
    ExceptionRequestSerializer,
    ExceptionSerializer,
    FindingSerializer,
    RunSerializer,
    ScoreSerializer,
)
from compliance.checks import CHECKS, for_target
from compliance.models import ComplianceException, ComplianceRun, Finding, TeamScore
from config.errors import InvalidRequest


class CheckViewSet(GatedViewSet):
    """The catalogue of checks: id, title, severity, CIS reference, remediation."""

    resource = "compliance"
    gate_actions = {"list": "compliance.view"}
    queryset = ComplianceRun.objects.none()
    serializer_class = CheckSerializer
    pagination_class = None

    def list(self, request):
        """Every check."""
        self.authorize()
        for_target("container")  # loads the registry
        return Response(CheckSerializer([c.as_dict() for c in CHECKS], many=True).data)


class RunViewSet(GatedListMixin, GatedRetrieveMixin, GatedViewSet):
    """Compliance runs; POST starts one now (synchronous: a pass takes about a second)."""

    resource = "compliance"
    gate_actions = {
        "list": "compliance.view",
        "retrieve": "compliance.view",
        "create": "compliance.run",
    }
    queryset = ComplianceRun.objects.all()
    serializer_class = RunSerializer
    filter_backends = []

    # Runs hold site-wide totals: restrict() shows them to global compliance.view holders only
    # (a team-scoped grant covers nothing on an object without a team); teams read /scores/.

    @extend_schema(request=None, responses=RunSerializer)
    def create(self, request):
        """Run every check now; 201 with the run."""
        if request.data:
            raise InvalidRequest("this endpoint takes no body")
        run = services.run_compliance(
            trigger=ComplianceRun.Trigger.MANUAL, acting_user=request.user, summary=self.summary()
        )
        return Response(RunSerializer(run).data, status=status.HTTP_201_CREATED)


class FindingViewSet(GatedListMixin, GatedViewSet):
    """Findings of the newest run (or ?run=), filtered by severity (comma list), check,
    object_type, object_id, team, host, excepted; ?export=csv|json gives the whole list."""

    resource = "compliance"
    gate_actions = {"list": "compliance.view"}
    queryset = Finding.objects.all()
    serializer_class = FindingSerializer
    filter_backends = []

    def get_queryset(self):
        return queries.findings(self.request.user, self.request.query_params)

    def list(self, request, *args, **kwargs):
        export = request.query_params.get("export")
        if export is None:
            return super().list(request, *args, **kwargs)
        self.authorize()
        rows = queries.sort_by_severity(self.get_queryset())
        if export == "csv":
            response = HttpResponse(queries.to_csv(rows), content_type="text/csv")
            response["Content-Disposition"] = 'attachment; filename="compliance-findings.csv"'
            return response
        if export == "json":
            return Response([queries.finding_dict(f) for f in rows])
        raise InvalidRequest("export must be csv or json")


class ScoreViewSet(GatedListMixin, GatedViewSet):
    """Score per team in the newest run (or ?run=); ?trend=1 gives the score over recent runs."""

    resource = "compliance"
    gate_actions = {"list": "compliance.view"}
    queryset = TeamScore.objects.all()
    serializer_class = ScoreSerializer
    filter_backends = []
    pagination_class = None

    def get_queryset(self):
        return queries.scores(self.request.user, queries.pick_run(self.request.query_params))

    def list(self, request, *args, **kwargs):
        if request.query_params.get("trend"):
            self.authorize()
            return Response(queries.trend(request.user))
        return super().list(request, *args, **kwargs)


class ExceptionViewSet(GatedListMixin, GatedRetrieveMixin, GatedViewSet):
    """Exceptions: a check may fail on one object, with a reason, until an expiry."""

    resource = "compliance"
    gate_actions = {
        "list": "compliance.view",
        "retrieve": "compliance.view",
        "create": "compliance.except",
        "revoke": "compliance.except",
    }
    queryset = ComplianceException.objects.all()
    serializer_class = ExceptionSerializer
    filterset_fields = ["check_id", "object_type", "object_id", "team", "host"]

    @extend_schema(request=ExceptionRequestSerializer, responses=ExceptionSerializer)
    def create(self, request):
        """Grant an exception (reason and expiry required); decided on the object's team."""
        body = ExceptionRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        exc = services.do_grant_exception(
            check_id=data["check_id"],
            object_type=data["object_type"],
            object_id=data["object_id"],
            reason=data["reason"],
            expires_at=data["expires_at"],
            acting_user=request.user,
            summary=self.summary(),
        )
        return Response(ExceptionSerializer(exc).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=None, responses=ExceptionSerializer)
    @action(detail=True, methods=["post"])
    def revoke(self, request, pk=None):
        """End the exception now."""
        exc = self.get_object()
        exc = services.do_revoke_exception(exc, acting_user=request.user, summary=self.summary())
        return Response(ExceptionSerializer(exc).data)
