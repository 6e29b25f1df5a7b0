"""/api/v1/compliance/rollouts/: plan a rolling update (shown before it starts), start it, follow it."""

from drf_spectacular.utils import extend_schema
from registries.models import Registry
from rest_framework import status
from rest_framework.decorators import action
from rest_framework.response import Response

from api.base import GatedListMixin, GatedRetrieveMixin, GatedViewSet
from api.waiting import operation_response, wait_seconds
from compliance import rollouts
from compliance.api.serializers import (
    CheckRequestSerializer,
    RolloutRequestSerializer,
    RolloutSerializer,
)
from compliance.models import Rollout
from config.errors import InvalidRequest
from images.models import Image
from operations.services import do_host_operation
from rbac import gate


class RolloutViewSet(GatedListMixin, GatedRetrieveMixin, GatedViewSet):
    """Rolling updates: POST plans one (nothing changes yet), POST {id}/start/ runs it."""

    resource = "compliance"
    gate_actions = {
        "list": "compliance.view",
        "retrieve": "compliance.view",
        "create": "container.recreate",
        "start": "container.recreate",
        "check": "image.pull",
    }
    queryset = Rollout.objects.all()
    serializer_class = RolloutSerializer
    filterset_fields = ["host", "team", "state"]

    @extend_schema(request=RolloutRequestSerializer, responses=RolloutSerializer)
    def create(self, request):
        """The plan: which containers would be recreated on which image; 201."""
        body = RolloutRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        image = gate.restrict(Image.objects.all(), request.user, "image.view")
        image = image.select_related("host").filter(pk=data["image"]).first()
        if image is None:
            gate.not_visible(request.user, "container.recreate", "image", data["image"])
        rollout = rollouts.do_plan(
            image,
            target_ref=data["target"],
            source=data["source"],
            acting_user=request.user,
            summary=self.summary(),
        )
        return Response(RolloutSerializer(rollout).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=CheckRequestSerializer)
    @action(detail=False, methods=["post"])
    def check(self, request):
        """Ask the image's host whether its registry holds a newer image under its tag
        (202 with the operation; ?wait=N for the answer: local and remote digests, newer)."""
        wait_seconds(request)
        body = CheckRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        image = gate.restrict(Image.objects.all(), request.user, "image.view")
        image = image.select_related("host").filter(pk=data["image"]).first()
        if image is None:
            gate.not_visible(request.user, "image.pull", "image", data["image"])
        params = {"ref": data["ref"] or None}
        if data.get("registry"):
            if not Registry.objects.filter(pk=data["registry"]).exists():
                raise InvalidRequest(f"no registry {data['registry']}")
            params["registry"] = data["registry"]
        decision = self.require(image)
        op = do_host_operation(
            decision,
            kind="rollout.check",
            target_type="image",
            target_id=image.pk,
            host=image.host,
            team=image.team,
            params=params,
            acting_user=request.user,
            summary=self.summary() | {"image": image.image_id},
        )
        return operation_response(request, op)

    @extend_schema(request=None, responses=RolloutSerializer)
    @action(detail=True, methods=["post"])
    def start(self, request, pk=None):
        """Run the planned rollout now (one container at a time); answers when it is done."""
        rollout = self.get_object()
        self.authorize(rollout)
        rollout = rollouts.do_start(rollout, acting_user=request.user, summary=self.summary())
        return Response(RolloutSerializer(rollout).data)
