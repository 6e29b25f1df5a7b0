"""/api/v1/directory/mappings/: which directory groups give which team and role."""

from rest_framework import serializers, status
from rest_framework.response import Response

from accounts.models import Team
from api.base import GatedListMixin, GatedRetrieveMixin, GatedViewSet
from directory.models import SOURCES, GroupMapping
from directory.services import do_create_mapping, do_delete_mapping
from rbac.models import Role


class GroupMappingSerializer(serializers.ModelSerializer):
    """source (ldap|oidc), group (LDAP group DN or cn; OIDC claim value), team and/or role (no
    team: the role is bound globally)."""

    source = serializers.ChoiceField(choices=SOURCES)
    group = serializers.CharField(max_length=255, trim_whitespace=True)
    team = serializers.SlugRelatedField(
        slug_field="name", queryset=Team.objects.all(), required=False, allow_null=True
    )
    role = serializers.SlugRelatedField(
        slug_field="name", queryset=Role.objects.all(), required=False, allow_null=True
    )
    created_by = serializers.SlugRelatedField(slug_field="username", read_only=True)

    class Meta:
        model = GroupMapping
        fields = ["id", "source", "group", "team", "role", "created_by", "created_at"]
        read_only_fields = ["created_by", "created_at"]
        # Duplicates are refused by the service (case-insensitively), after the gate.
        validators = []


class GroupMappingViewSet(GatedListMixin, GatedRetrieveMixin, GatedViewSet):
    """Group mappings. To change one, delete it and create another."""

    resource = "directory"
    view_action = "directory.view"
    gate_actions = {
        "list": "directory.view",
        "retrieve": "directory.view",
        "create": "directory.manage",
        "destroy": "directory.manage",
    }
    queryset = GroupMapping.objects.select_related("team", "role", "created_by")
    serializer_class = GroupMappingSerializer
    filterset_fields = ["source", "team"]
    search_fields = ["group"]
    ordering_fields = ["id", "group", "created_at"]

    def create(self, request):
        """Map a directory group to a team (and a role on it)."""
        serializer = GroupMappingSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        mapping = do_create_mapping(
            source=data["source"],
            group=data["group"],
            team=data.get("team"),
            role=data.get("role"),
            acting_user=request.user,
            summary=self.summary(),
        )
        return Response(GroupMappingSerializer(mapping).data, status=status.HTTP_201_CREATED)

    def destroy(self, request, pk=None):
        """Remove a mapping (its grants go at each member's next sign-in)."""
        mapping = self.get_object()
        do_delete_mapping(mapping, acting_user=request.user, summary=self.summary())
        return Response(status=status.HTTP_204_NO_CONTENT)
