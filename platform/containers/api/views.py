"""/api/v1/containers/: create, list, read, lifecycle actions, logs, stats, top, exec."""

from django.conf import settings
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import serializers
from rest_framework.decorators import action
from rest_framework.response import Response

from api.base import GatedListMixin, GatedRetrieveMixin, GatedViewSet
from api.fields import StrictCharField, StrictSerializer
from api.lookups import pick_host, pick_team
from api.waiting import operation_response, wait_seconds
from config.errors import Conflict, InvalidRequest
from containers import list_version, maxima, services
from containers.api.filters import ContainerFilter
from containers.api.listing import OneQueryPagination
from containers.api.serializers import (
    ContainerAnswerSerializer,
    ContainerCreateSerializer,
    ContainerListSerializer,
    ContainerSerializer,
    ExecSerializer,
    LogsQuerySerializer,
    RenameSerializer,
    StopSerializer,
)
from containers.models import Container
from containers.not_removed import NOT_REMOVED
from hosts import migrate as migrating
from hosts import placement
from hosts.steps import StepFailed
from operations import dispatch
from rbac import gate
from rbac.grants import in_scope

# Query parameters of the list that only page it.
PAGING = frozenset({"page", "page_size"})
VERBS = ("start", "stop", "restart", "kill", "pause", "unpause")


class MigrateSerializer(StrictSerializer):
    """Where a live migration goes."""

    host = StrictCharField(help_text="the target host's name or id")
    mode = serializers.ChoiceField(
        choices=["precopy", "postcopy"],
        default="precopy",
        help_text="precopy (default: the container keeps running on the source until the "
        "target has it whole) or postcopy (shortest downtime: it runs on the target while "
        "its memory follows; a broken link meanwhile loses what the target did)",
    )


FORCE = OpenApiParameter(
    "force",
    OpenApiTypes.BOOL,
    description="Remove a running or paused container too (it is killed first).",
)
STATE = OpenApiParameter(
    "state",
    OpenApiTypes.STR,
    enum=[choice for choice, _ in Container.Observed.choices],
    description="Only containers in this observed state. Without it: every state but "
    "`removed` (removed containers stay listed with `?state=removed` until they are purged, "
    "BERTH_REMOVED_RETENTION_SECONDS after their removal).",
)


@extend_schema_view(list=extend_schema(parameters=[STATE]))
class ContainerViewSet(GatedListMixin, GatedRetrieveMixin, GatedViewSet):
    """Containers of the teams you may see (the list: live ones, as summaries)."""

    resource = "container"
    gate_actions = {
        "list": "container.view",
        "retrieve": "container.view",
        "create": "container.create",
        "destroy": "container.delete",
        "rename": "container.change",
        "logs": "container.logs",
        "stats": "container.stats",
        "top": "container.top",
        "exec": "container.exec",
        "migrate": "container.migrate",
        **{verb: f"container.{verb}" for verb in VERBS},
    }
    queryset = Container.objects.select_related("team", "host")
    serializer_class = ContainerSerializer
    filterset_class = ContainerFilter
    pagination_class = OneQueryPagination  # the list's rows and total in one query
    search_fields = ["name", "image", "runtime_id"]
    ordering_fields = ["name", "created_at", "observed_state", "desired_state", "image", "id"]
    ordering = ["name"]

    def get_queryset(self):
        queryset = super().get_queryset()
        if self.action != "list":
            return queryset
        if not self.request.query_params.get("state"):
            # Removed containers are history (the audit log has it): shown when asked for.
            queryset = queryset.filter(NOT_REMOVED)
        return queryset.defer("spec")  # rows are summaries; the spec is in the detail view

    def get_serializer_class(self):
        return ContainerListSerializer if self.action == "list" else super().get_serializer_class()

    def list(self, request, *args, **kwargs):
        """The gate's one decision, then the visible rows as tuples (no instance per row)."""
        self.authorize()
        if set(request.query_params) <= PAGING:
            # No filter, search or ordering asked for (what most clients send): the filter
            # backends would only build an empty FilterSet (deep copies of its filters) and
            # apply the default order. The page's SQL is compiled once per shape of the gate's
            # filter (containers/api/listing.py).
            page = self.paginator.paginate_compiled(
                lambda: (
                    self.get_queryset()
                    .order_by(*self.ordering)
                    .values_list(*ContainerListSerializer.COLUMNS)
                ),
                Container,
                gate.restrict_key(request.user, self.permission_code, Container),
                request,
                render=ContainerListSerializer.list_row,
                count=self.get_queryset,
                version=list_version.current,
            )
            if page is not None:
                return self.get_paginated_response(page)
            queryset = self.get_queryset().order_by(*self.ordering)
        else:
            queryset = self.filter_queryset(self.get_queryset())
        rows = queryset.values_list(*ContainerListSerializer.COLUMNS)
        page = self.paginate_queryset(rows)
        data = ContainerListSerializer.rows(rows if page is None else page)
        return Response(data) if page is None else self.get_paginated_response(data)

    @extend_schema(request=ContainerCreateSerializer, responses={202: ContainerAnswerSerializer})
    def create(self, request):
        """Create a container from a spec (202 with the Operation)."""
        wait_seconds(request)
        # Refuse (and audit) before the body names a team the caller may not even see.
        self.require()
        body = ContainerCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        team = pick_team(request.user, data.get("team"))
        # No host named: placement picks one the caller may use (hosts/placement.py).
        host = (
            placement.choose(request.user, team)
            if data.get("host") in (None, "")
            else pick_host(request.user, data.get("host"))
        )
        container, op = services.do_create_container(
            team=team,
            host=host,
            spec=data["spec"],
            start=data["start"],
            acting_user=request.user,
            summary=self.summary() | {"spec": data["spec"]},
        )
        return operation_response(request, op, lambda: _container_body(container))

    @extend_schema(parameters=[FORCE])
    def destroy(self, request, pk=None):
        """Remove the container (202 with the Operation; 200 at once for one that runs
        nothing: its row is removed and its host deletes it after the answer)."""
        wait_seconds(request)
        container = self.get_object()
        params = {"force": request.query_params.get("force") in ("1", "true")}
        # The host's deletion of a container that runs nothing is sent after the answer.
        later = dispatch.AfterResponse()
        with later.collecting():
            op = services.do_container_verb(
                container, "remove", acting_user=request.user, params=params, summary=self.summary()
            )
            response = operation_response(request, op)
        return later.attach(response)

    def _verb(self, request, verb):
        wait_seconds(request)
        container = self.get_object()
        params = {}
        if verb in ("stop", "restart", "kill"):
            body = StopSerializer(data=request.data or {})
            body.is_valid(raise_exception=True)
            params = dict(body.validated_data)
            if verb in ("stop", "restart"):
                # Grace periods are capped by policy (containers/maxima.py; default 60 s).
                scope = in_scope(request.user, container.team_id, container.host_id)
                problem = maxima.stop_timeout_problem(params.get("timeout"), scope.max_limits)
                if problem:
                    raise InvalidRequest(problem)
        op = services.do_container_verb(
            container, verb, acting_user=request.user, params=params, summary=self.summary()
        )
        return operation_response(request, op)

    @extend_schema(request=None)
    @action(detail=True, methods=["post"])
    def start(self, request, pk=None):
        """Start the container."""
        return self._verb(request, "start")

    @extend_schema(request=StopSerializer)
    @action(detail=True, methods=["post"])
    def stop(self, request, pk=None):
        """Stop it: its stop signal, then SIGKILL after the timeout."""
        return self._verb(request, "stop")

    @extend_schema(request=StopSerializer)
    @action(detail=True, methods=["post"])
    def restart(self, request, pk=None):
        """Stop and start it again."""
        return self._verb(request, "restart")

    @extend_schema(request=StopSerializer)
    @action(detail=True, methods=["post"])
    def kill(self, request, pk=None):
        """Send a signal (default SIGKILL)."""
        return self._verb(request, "kill")

    @extend_schema(request=None)
    @action(detail=True, methods=["post"])
    def pause(self, request, pk=None):
        """Freeze every process."""
        return self._verb(request, "pause")

    @extend_schema(request=None)
    @action(detail=True, methods=["post"])
    def unpause(self, request, pk=None):
        """Thaw it."""
        return self._verb(request, "unpause")

    @extend_schema(request=RenameSerializer, responses={202: ContainerAnswerSerializer})
    @action(detail=True, methods=["post"])
    def rename(self, request, pk=None):
        """Give it a new name."""
        wait_seconds(request)
        container = self.get_object()
        body = RenameSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        op = services.do_rename_container(
            container, body.validated_data["name"], acting_user=request.user, summary=self.summary()
        )
        return operation_response(request, op, lambda: _container_body(container))

    @extend_schema(request=MigrateSerializer, responses={200: ContainerSerializer})
    @action(detail=True, methods=["post"])
    def migrate(self, request, pk=None):
        """Move the running container to another host, memory and all (CRIU)."""
        container = self.get_object()
        body = MigrateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        self.require(container)
        target = pick_host(request.user, body.validated_data["host"])
        try:
            moved = migrating.migrate(
                container,
                target,
                acting_user=request.user,
                summary=self.summary(),
                mode=body.validated_data["mode"],
            )
        except StepFailed as err:
            raise Conflict(f"migration of {container.name} failed: {err}") from None
        return Response(ContainerSerializer(moved).data)

    def _may_be_root(self) -> bool:
        """Whether the gate lets this user exec as root here: the agent, which can resolve
        user names and the container's default user, refuses uid 0 otherwise."""
        decision = gate.decide(
            self.request.user, "container.exec", self.get_object(), options={"user": "0"}
        )
        return decision.allowed

    def _ask_host(self, request, task, params, options=None, timeout=None):
        container = self.get_object()
        decision = self.authorize(container, options=options)
        # The agent acts on this decision, not on anything else in the message.
        claims = dispatch.decision_claims(
            decision, object_id=container.pk, root_allowed=params.get("root_allowed", False)
        )
        return Response(
            dispatch.call_host(
                container.host, task, [container.pk, params], timeout=timeout, decision=claims
            )
        )

    @action(detail=True, methods=["get"])
    def logs(self, request, pk=None):
        """The last lines of its output (?tail=&since=&timestamps=)."""
        query = LogsQuerySerializer(data=request.query_params.dict())
        query.is_valid(raise_exception=True)
        params = dict(query.validated_data)
        params["since"] = params["since"].isoformat() if params["since"] else None
        return self._ask_host(request, "agent.container_logs", params)

    @action(detail=True, methods=["get"])
    def stats(self, request, pk=None):
        """CPU, memory, pids and block IO counters."""
        return self._ask_host(request, "agent.container_stats", {})

    @action(detail=True, methods=["get"])
    def top(self, request, pk=None):
        """Its processes."""
        return self._ask_host(request, "agent.container_top", {})

    @extend_schema(request=ExecSerializer)
    @action(detail=True, methods=["post"])
    def exec(self, request, pk=None):
        """Run a command to completion; returns its exit code and output."""
        body = ExecSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        params = dict(body.validated_data)
        params["root_allowed"] = self._may_be_root()
        # The host needs the command's own time plus a margin to answer.
        timeout = params["timeout"] + settings.BERTH_EXEC_MARGIN_SECONDS
        return self._ask_host(
            request, "agent.container_exec", params, options=params, timeout=timeout
        )


def _container_body(container) -> dict:
    """The container as it is now (after a ?wait the agent has updated its row)."""
    # One query for the row's columns, its team's and host's names and its health, written
    # out as ContainerSerializer would (the list's row, plus the spec), without building the
    # ModelSerializer's fields for one instance (a few ms of each create's CPU).
    columns = ContainerListSerializer.COLUMNS
    values = Container.objects.filter(pk=container.pk).values_list(*columns, "spec").get()
    return {"container": ContainerListSerializer.detail_row(values)}
