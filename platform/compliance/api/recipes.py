"""/api/v1/compliance/recipes/: how Berth built its images; check their bases, rebuild them."""

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.decorators import action
from rest_framework.response import Response

from api.base import GatedListMixin, GatedRetrieveMixin, GatedViewSet
from compliance import recipes
from compliance.models import BuildRecipe
from config.errors import Conflict
from hosts import steps


class BuildRecipeSerializer(serializers.ModelSerializer):
    """A recipe as the API shows it (the context itself stays on the server)."""

    host_name = serializers.CharField(source="host.name", read_only=True)

    class Meta:
        model = BuildRecipe
        fields = [
            "id",
            "host",
            "host_name",
            "team",
            "image_row",
            "image_id",
            "tag",
            "dockerfile",
            "build_args",
            "context_digest",
            "bases",
            "created_at",
            "checked_at",
            "base_newer",
            "check_result",
        ]
        read_only_fields = fields


class RebuildSerializer(serializers.Serializer):
    """The answer of a rebuild: the recipe and the image the tag names now."""

    recipe = BuildRecipeSerializer()
    image_id = serializers.CharField()


class BuildRecipeViewSet(GatedListMixin, GatedRetrieveMixin, GatedViewSet):
    """Build recipes: list and show; check/ asks the registry about the bases (image.pull),
    rebuild/ pulls the newer bases and builds the kept context under its tag (image.build)."""

    resource = "compliance"
    gate_actions = {
        "list": "compliance.view",
        "retrieve": "compliance.view",
        "check": "image.pull",
        "rebuild": "image.build",
    }
    queryset = BuildRecipe.objects.select_related("host", "team")
    serializer_class = BuildRecipeSerializer
    filterset_fields = ["host", "team", "tag", "base_newer"]

    @extend_schema(request=None, responses=BuildRecipeSerializer)
    @action(detail=True, methods=["post"])
    def check(self, request, pk=None):
        """Ask the recipe's host whether a base has a newer digest (answers when it knows)."""
        recipe = self.get_object()
        self.require(recipes.probe(recipe))  # a refusal is a 403, audited, before any step
        try:
            recipe = recipes.check(recipe, request.user, self.summary())
        except steps.StepFailed as err:
            raise Conflict(str(err), code="host_step_failed") from None
        return Response(BuildRecipeSerializer(recipe).data)

    @extend_schema(request=None, responses=RebuildSerializer)
    @action(detail=True, methods=["post"])
    def rebuild(self, request, pk=None):
        """Pull the bases the last check found newer, build the recipe again under its tag."""
        recipe = self.get_object()
        self.require(recipes.probe(recipe))
        try:
            image_id = recipes.rebuild(recipe, request.user, self.summary())
        except steps.StepFailed as err:
            raise Conflict(str(err), code="host_step_failed") from None
        return Response({"recipe": BuildRecipeSerializer(recipe).data, "image_id": image_id})
