"""/api/v1/roles/ and /api/v1/bindings/: managed under the Kubernetes escalation rule."""

from django.db import transaction
from rest_framework import serializers, status
from rest_framework.response import Response

from accounts.models import Team, User
from api.base import GatedListMixin, GatedRetrieveMixin, GatedViewSet
from config.errors import Conflict, InvalidRequest
from containers import maxima
from containers.policy import path_within
from hosts.models import Host
from rbac import catalog, gate
from rbac.models import Role, RoleBinding


class RoleSerializer(serializers.ModelSerializer):
    """A role: permissions (wildcards allowed), bind-mount host paths, default limits."""

    class Meta:
        model = Role
        fields = [
            "id",
            "name",
            "description",
            "permissions",
            "bind_paths",
            "default_limits",
            "max_limits",
            "builtin",
            "created_at",
        ]
        read_only_fields = ["builtin", "created_at"]

    def validate_permissions(self, value):
        if not isinstance(value, list) or not all(isinstance(c, str) for c in value):
            raise serializers.ValidationError("a list of permission codes")
        bad = [c for c in value if not catalog.valid_code(c)]
        if bad:
            raise serializers.ValidationError(f"unknown permission(s): {', '.join(bad)}")
        return sorted(set(value))

    def validate_bind_paths(self, value):
        if not isinstance(value, list) or not all(
            isinstance(p, str) and path_within(p, ["/"]) for p in value
        ):
            raise serializers.ValidationError("a list of absolute host paths")
        return value

    def validate_default_limits(self, value):
        allowed = {"memory", "cpu_quota", "cpu_period", "pids", "cpu_shares", "memory_swap"}
        if not isinstance(value, dict) or set(value) - allowed:
            raise serializers.ValidationError(
                f"an object with keys from {', '.join(sorted(allowed))}"
            )
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in value.values()):
            raise serializers.ValidationError("limits are integers")
        return value

    def validate_max_limits(self, value):
        problem = maxima.valid(value)
        if problem:
            raise serializers.ValidationError(problem)
        return value


class RoleViewSet(GatedListMixin, GatedRetrieveMixin, GatedViewSet):
    """Roles. Built-in roles are fixed; nobody edits a role they hold or grants more than they hold."""

    resource = "role"
    gate_actions = {
        "list": "role.view",
        "retrieve": "role.view",
        "create": "role.manage",
        "update": "role.manage",
        "partial_update": "role.manage",
        "destroy": "role.manage",
    }
    queryset = Role.objects.all()
    serializer_class = RoleSerializer
    search_fields = ["name", "description"]
    ordering_fields = ["name"]

    def _options(self, role, data):
        return {
            "permissions": data.get("permissions", role.permissions),
            "bind_paths": data.get("bind_paths", role.bind_paths),
            "role_name": role.name if role.pk else None,
        }

    def create(self, request):
        """Create a custom role."""
        serializer = RoleSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        role = Role(**serializer.validated_data)
        decision = self.require(role, options=self._options(role, serializer.validated_data))
        with transaction.atomic():
            role.save(force_insert=True)
            gate.record(decision, summary=self.summary() | {"body": serializer.data})
        return Response(RoleSerializer(role).data, status=status.HTTP_201_CREATED)

    def update(self, request, pk=None, partial=False):
        """Change a custom role."""
        role = self.get_object()
        serializer = RoleSerializer(role, data=request.data, partial=partial)
        serializer.is_valid(raise_exception=True)
        decision = self.require(role, options=self._options(role, serializer.validated_data))
        if role.builtin:
            raise Conflict(f"role {role.name!r} is built in and cannot be changed")
        with transaction.atomic():
            serializer.save()
            gate.record(decision, summary=self.summary() | {"body": request.data})
        return Response(serializer.data)

    def partial_update(self, request, pk=None):
        """Change some fields of a custom role."""
        return self.update(request, pk, partial=True)

    def destroy(self, request, pk=None):
        """Delete a custom role that no binding uses."""
        role = self.get_object()
        decision = self.require(role, options=self._options(role, {"permissions": []}))
        if role.builtin:
            raise Conflict(f"role {role.name!r} is built in and cannot be deleted")
        if role.bindings.exists():
            raise Conflict(f"role {role.name!r} is still bound; remove its bindings first")
        with transaction.atomic():
            gate.record(decision, summary=self.summary())
            role.delete()
        return Response(status=status.HTTP_204_NO_CONTENT)


class BindingSerializer(serializers.ModelSerializer):
    """Subject (user or team) -> role, in scope global, one team, or one host."""

    user = serializers.PrimaryKeyRelatedField(
        queryset=User.objects.all(), required=False, allow_null=True
    )
    team = serializers.PrimaryKeyRelatedField(
        queryset=Team.objects.all(), required=False, allow_null=True
    )
    role = serializers.SlugRelatedField(slug_field="name", queryset=Role.objects.all())
    scope_team = serializers.PrimaryKeyRelatedField(
        queryset=Team.objects.all(), required=False, allow_null=True
    )
    scope_host = serializers.PrimaryKeyRelatedField(
        queryset=Host.objects.all(), required=False, allow_null=True
    )
    scope = serializers.CharField(source="scope_label", read_only=True)

    class Meta:
        model = RoleBinding
        fields = [
            "id",
            "user",
            "team",
            "role",
            "scope_team",
            "scope_host",
            "scope",
            "created_by",
            "created_at",
        ]
        read_only_fields = ["created_by", "created_at"]

    def validate(self, attrs):
        if bool(attrs.get("user")) == bool(attrs.get("team")):
            raise serializers.ValidationError("give exactly one subject: user or team")
        if attrs.get("scope_team") and attrs.get("scope_host"):
            raise serializers.ValidationError("give at most one scope: scope_team or scope_host")
        return attrs


class BindingViewSet(GatedListMixin, GatedRetrieveMixin, GatedViewSet):
    """Role bindings. To change one, delete it and create another."""

    resource = "binding"
    view_action = "role.view"
    gate_actions = {
        "list": "role.view",
        "retrieve": "role.view",
        "create": "role.manage",
        "destroy": "role.manage",
    }
    queryset = RoleBinding.objects.select_related(
        "user", "team", "role", "scope_team", "scope_host"
    )
    serializer_class = BindingSerializer
    filterset_fields = ["user", "team", "role", "scope_team", "scope_host"]
    ordering_fields = ["id", "created_at"]

    def _options(self, binding):
        return {
            "subject_user_id": binding.user_id,
            "subject_team_id": binding.team_id,
            "permissions": binding.role.permissions,
            "bind_paths": binding.role.bind_paths,
        }

    def create(self, request):
        """Bind a role to a user or a team."""
        serializer = BindingSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        binding = RoleBinding(**serializer.validated_data, created_by=request.user)
        decision = self.require(binding, options=self._options(binding))
        duplicate = RoleBinding.objects.filter(
            user=binding.user,
            team=binding.team,
            role=binding.role,
            scope_team=binding.scope_team,
            scope_host=binding.scope_host,
        )
        if duplicate.exists():
            raise InvalidRequest("this binding exists already")
        with transaction.atomic():
            binding.save(force_insert=True)
            gate.record(decision, summary=self.summary() | {"body": request.data})
        return Response(BindingSerializer(binding).data, status=status.HTTP_201_CREATED)

    def destroy(self, request, pk=None):
        """Remove a binding (not your own)."""
        binding = self.get_object()
        options = self._options(binding) | {"permissions": []}
        decision = self.require(binding, options=options)
        with transaction.atomic():
            gate.record(decision, summary=self.summary())
            binding.delete()
        return Response(status=status.HTTP_204_NO_CONTENT)
