"""/api/v1/compliance/rollout-schedules/: a team opts in to scheduled rolling updates.

PUT-like POST: one schedule per team, created or replaced (permission container.recreate on
the team: the scheduled rollouts act as the user who opted in); DELETE opts out. Every change
is audited with the window."""

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response

from accounts.models import Team
from api.base import GatedListMixin, GatedRetrieveMixin, GatedViewSet
from compliance import schedule
from compliance.models import RolloutSchedule
from rbac import gate


class RolloutScheduleSerializer(serializers.ModelSerializer):
    """A team's schedule as the API shows it."""

    team_name = serializers.CharField(source="team.name", read_only=True)
    acting_user = serializers.CharField(source="acting_user.username", default=None)

    class Meta:
        model = RolloutSchedule
        fields = [
            "id",
            "team",
            "team_name",
            "enabled",
            "window_start",
            "window_end",
            "pull",
            "acting_user",
            "last_run_at",
            "last_result",
            "updated_at",
        ]
        read_only_fields = fields


class RolloutScheduleRequestSerializer(serializers.Serializer):
    """What POST takes: the team (id or name), the window in hours UTC, pull, enabled."""

    team = serializers.CharField()
    window_start = serializers.IntegerField(min_value=0, max_value=23, default=2)
    window_end = serializers.IntegerField(min_value=0, max_value=23, default=5)
    pull = serializers.BooleanField(default=True)
    enabled = serializers.BooleanField(default=True)


class RolloutScheduleViewSet(GatedListMixin, GatedRetrieveMixin, GatedViewSet):
    """Teams' opt-ins to scheduled rollouts: list, set (create or replace), remove."""

    resource = "compliance"
    gate_actions = {
        "list": "compliance.view",
        "retrieve": "compliance.view",
        "create": "container.recreate",
        "destroy": "container.recreate",
    }
    queryset = RolloutSchedule.objects.select_related("team", "acting_user")
    serializer_class = RolloutScheduleSerializer
    filterset_fields = ["team", "enabled"]

    @extend_schema(request=RolloutScheduleRequestSerializer, responses=RolloutScheduleSerializer)
    def create(self, request):
        """Opt a team in (or change its window); the caller becomes the acting user."""
        body = RolloutScheduleRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = dict(body.validated_data)
        ref = data.pop("team")
        by_id = ref.isascii() and ref.isdigit() and len(ref) <= 9  # no overflow, no "²"
        team = Team.objects.filter(pk=int(ref)).first() if by_id else None
        team = team or Team.objects.filter(name=ref).first()
        if team is None:
            gate.not_visible(request.user, "container.recreate", "team", ref)
        obj, created = schedule.set_schedule(team, data, request.user, self.summary())
        code = status.HTTP_201_CREATED if created else status.HTTP_200_OK
        return Response(RolloutScheduleSerializer(obj).data, status=code)

    def destroy(self, request, pk=None):
        """Opt the team out: no more scheduled rollouts (running ones finish)."""
        schedule.remove_schedule(self.get_object(), request.user, self.summary())
        return Response(status=status.HTTP_204_NO_CONTENT)
