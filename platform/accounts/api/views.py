"""/api/v1/users/, /teams/ and /tokens/."""

from django.db import transaction
from django.utils import timezone
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.decorators import action
from rest_framework.response import Response

from accounts import services
from accounts.models import ApiToken, Team, User
from api.base import (
    GatedCreateMixin,
    GatedDestroyMixin,
    GatedListMixin,
    GatedRetrieveMixin,
    GatedUpdateMixin,
    GatedViewSet,
)
from api.fields import StrictBooleanField, StrictIntegerField, StrictSerializer
from config.errors import InvalidRequest
from containers import quotas
from rbac import gate

PRIVILEGED_USER_FIELDS = services.PRIVILEGED_USER_FIELDS


class UserSerializer(serializers.ModelSerializer):
    """A user; the password is write-only and stored hashed."""

    password = serializers.CharField(
        write_only=True, required=False, min_length=8, style={"input_type": "password"}
    )

    class Meta:
        model = User
        fields = [
            "id",
            "username",
            "email",
            "first_name",
            "last_name",
            "is_active",
            "is_staff",
            "is_superuser",
            "password",
            "date_joined",
            "last_login",
        ]
        read_only_fields = ["date_joined", "last_login"]

    def create(self, validated_data):
        password = validated_data.pop("password", None)
        user = User(**validated_data)
        user.set_password(password) if password else user.set_unusable_password()
        user.save()
        return user

    def update(self, instance, validated_data):
        password = validated_data.pop("password", None)
        for name, value in validated_data.items():
            setattr(instance, name, value)
        if password:
            instance.set_password(password)
        instance.save()
        return instance


class UserViewSet(
    GatedListMixin,
    GatedRetrieveMixin,
    GatedCreateMixin,
    GatedUpdateMixin,
    GatedDestroyMixin,
    GatedViewSet,
):
    """Users. Staff, superuser and active flags are never writable by the user they describe."""

    resource = "user"
    gate_actions = {
        "list": "user.view",
        "retrieve": "user.view",
        "create": "user.create",
        "update": "user.change",
        "partial_update": "user.change",
        "destroy": "user.delete",
    }
    queryset = User.objects.all()
    serializer_class = UserSerializer
    filterset_fields = ["is_active", "is_staff", "username"]
    search_fields = ["username", "email", "first_name", "last_name"]
    ordering_fields = ["username", "date_joined"]

    def _escalation_options(self, target):
        """Changing a user means acting as them (accounts.services.user_change_options)."""
        return services.user_change_options(target, self.request.data)

    def create_options(self, obj):
        return services.new_user_options(obj)

    def update(self, request, *args, **kwargs):
        target = self.get_object()
        options = self._escalation_options(target)
        gate.require(
            request.user,
            "user.change",
            target,
            resource="user",
            options=options,
            summary=self.summary(),
        )
        return super().update(request, *args, **kwargs)

    def destroy(self, request, *args, **kwargs):
        target = self.get_object()
        options = self._escalation_options(target)
        gate.require(
            request.user,
            "user.delete",
            target,
            resource="user",
            options=options,
            summary=self.summary(),
        )
        return super().destroy(request, *args, **kwargs)

    def perform_destroy(self, obj):
        if obj.pk == self.request.user.pk:
            raise InvalidRequest("you cannot delete yourself")
        obj.delete()


class MemberSerializer(StrictSerializer):
    """A user to add to a team."""

    user = serializers.PrimaryKeyRelatedField(queryset=User.objects.all())


class TeamSerializer(serializers.ModelSerializer):
    """A team and its member ids."""

    members = serializers.PrimaryKeyRelatedField(many=True, read_only=True)

    class Meta:
        model = Team
        fields = ["id", "name", "description", "members", "quotas", "created_at"]
        # Quotas change only through PUT .../quotas/ (team.quota: a team's own admins
        # must not raise them).
        read_only_fields = ["members", "quotas", "created_at"]


class QuotasSerializer(StrictSerializer):
    """A team's quotas (containers/quotas.py keys)."""

    quotas = serializers.DictField(child=serializers.IntegerField(min_value=0))

    def validate_quotas(self, value):
        problem = quotas.valid(value)
        if problem:
            raise serializers.ValidationError(problem)
        return value


class TeamUsageSerializer(serializers.Serializer):
    """Quotas and what is in use."""

    quotas = serializers.DictField(child=serializers.IntegerField())
    usage = serializers.DictField(child=serializers.IntegerField())


class TeamViewSet(
    GatedListMixin,
    GatedRetrieveMixin,
    GatedCreateMixin,
    GatedUpdateMixin,
    GatedDestroyMixin,
    GatedViewSet,
):
    """Teams; adding a member grants them the team's roles, so the escalation rule applies."""

    resource = "team"
    gate_actions = {
        "list": "team.view",
        "retrieve": "team.view",
        "create": "team.create",
        "update": "team.change",
        "partial_update": "team.change",
        "destroy": "team.delete",
        "add_member": "team.change",
        "remove_member": "team.change",
        "usage": "team.view",
        "set_quotas": "team.quota",
    }
    queryset = Team.objects.prefetch_related("members")
    serializer_class = TeamSerializer
    search_fields = ["name", "description"]
    ordering_fields = ["name", "created_at"]

    @extend_schema(request=None, responses={200: TeamUsageSerializer})
    @action(detail=True, methods=["get"])
    def usage(self, request, pk=None):
        """What the team uses against its quotas."""
        team = self.get_object()
        self.authorize(team)
        return Response({"quotas": team.quotas or {}, "usage": quotas.usage(team)})

    @extend_schema(request=QuotasSerializer, responses={200: TeamSerializer})
    @action(detail=True, methods=["put"], url_path="quotas")
    def set_quotas(self, request, pk=None):
        """Set the team's quotas (an empty object removes them)."""
        team = self.get_object()
        body = QuotasSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        decision = self.require(team)
        with transaction.atomic():
            Team.objects.filter(pk=team.pk).update(quotas=body.validated_data["quotas"])
            gate.record(
                decision, summary=self.summary() | {"quotas": body.validated_data["quotas"]}
            )
        return Response(TeamSerializer(Team.objects.get(pk=team.pk)).data)

    @extend_schema(request=MemberSerializer, responses={201: TeamSerializer})
    @action(detail=True, methods=["post"], url_path="members")
    def add_member(self, request, pk=None):
        """Add a user to the team."""
        team = self.get_object()
        body = MemberSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        member = body.validated_data["user"]
        services.do_change_membership(
            team, member, adding=True, acting_user=request.user, summary=self.summary()
        )
        return Response(
            TeamSerializer(Team.objects.get(pk=team.pk)).data, status=status.HTTP_201_CREATED
        )

    @action(detail=True, methods=["delete"], url_path=r"members/(?P<user_id>\d+)")
    def remove_member(self, request, pk=None, user_id=None):
        """Remove a user from the team."""
        team = self.get_object()
        member = User.objects.filter(pk=int(user_id)).first()
        if member is None:
            raise InvalidRequest(f"no user {user_id}")
        services.do_change_membership(
            team, member, adding=False, acting_user=request.user, summary=self.summary()
        )
        return Response(status=status.HTTP_204_NO_CONTENT)


class TokenSerializer(serializers.ModelSerializer):
    """An API token (never its secret, except once in the create answer)."""

    class Meta:
        model = ApiToken
        fields = [
            "id",
            "name",
            "prefix",
            "read_only",
            "created_at",
            "expires_at",
            "revoked_at",
            "last_used_at",
        ]
        read_only_fields = fields


class TokenCreateSerializer(StrictSerializer):
    """A name per client, a lifetime and an optional read-only flag."""

    name = serializers.CharField(max_length=64)
    days = StrictIntegerField(required=False, default=90, min_value=1, max_value=365)
    read_only = StrictBooleanField(required=False, default=False)


class TokenViewSet(GatedListMixin, GatedRetrieveMixin, GatedViewSet):
    """Your own API tokens; DELETE revokes one."""

    resource = "token"
    gate_actions = {
        "list": "token.view",
        "retrieve": "token.view",
        "create": "token.create",
        "destroy": "token.delete",
    }
    queryset = ApiToken.objects.all()
    serializer_class = TokenSerializer
    ordering_fields = ["created_at", "name"]

    @extend_schema(request=TokenCreateSerializer, responses={201: TokenSerializer})
    def create(self, request):
        """Issue a token; the answer holds its secret, shown this once."""
        body = TokenCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        if ApiToken.objects.filter(user=request.user, name=data["name"]).exists():
            raise InvalidRequest(f"you already have a token named {data['name']!r}")
        decision = self.require(ApiToken(user=request.user, name=data["name"]))
        with transaction.atomic():
            token, secret = ApiToken.issue(
                request.user, data["name"], days=data["days"], read_only=data["read_only"]
            )
            gate.record(
                decision,
                summary=self.summary() | {"name": token.name, "read_only": token.read_only},
            )
        return Response(
            TokenSerializer(token).data | {"token": secret}, status=status.HTTP_201_CREATED
        )

    def destroy(self, request, pk=None):
        """Revoke the token (kept, for the audit trail)."""
        token = self.get_object()
        decision = self.require(token)
        with transaction.atomic():
            ApiToken.objects.filter(pk=token.pk, revoked_at__isnull=True).update(
                revoked_at=timezone.now()
            )
            gate.record(decision, summary=self.summary())
        return Response(status=status.HTTP_204_NO_CONTENT)
