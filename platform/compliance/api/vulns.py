"""/api/v1/compliance/ inventories (scan, SBOM), advisories per image or container, OSV imports."""

import tempfile

from django.http import HttpResponse
from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.decorators import action
from rest_framework.response import Response

from api.base import GatedListMixin, GatedRetrieveMixin, GatedViewSet
from api.waiting import operation_response, wait_seconds
from compliance import inventories, lookups, sbom, services
from compliance.api.serializers import (
    AdvisoryMatchSerializer,
    InventoryDetailSerializer,
    InventorySerializer,
    OsvImportSerializer,
    OsvUploadSerializer,
    ScanRequestSerializer,
)
from compliance.models import ImageAdvisory, ImageInventory, OsvImport
from compliance.models.findings import SEVERITY_ORDER
from config.errors import InvalidRequest
from containers.models import Container
from hosts.models import Host
from images.models import Image
from rbac import gate


class InventoryViewSet(GatedListMixin, GatedRetrieveMixin, GatedViewSet):
    """Image inventories: list, detail with packages, SBOM, and POST scan/ to read them again."""

    resource = "compliance"
    gate_actions = {
        "list": "compliance.view",
        "retrieve": "compliance.view",
        "sbom": "compliance.view",
        "scan": "compliance.run",
    }
    queryset = ImageInventory.objects.select_related("image")
    serializer_class = InventorySerializer
    filterset_fields = ["host", "team", "status", "ecosystem", "image"]

    def get_serializer_class(self):
        return InventoryDetailSerializer if self.action == "retrieve" else InventorySerializer

    @action(detail=True, methods=["get"])
    def sbom(self, request, pk=None):
        """The inventory as an SBOM: CycloneDX 1.5 JSON, or SPDX 2.3 JSON with ?kind=spdx
        (unknown inventories: 409)."""
        kind = request.query_params.get("kind") or "cyclonedx"
        if kind not in ("cyclonedx", "spdx"):
            raise InvalidRequest("kind must be cyclonedx or spdx")
        inventory = self.get_object()
        self.authorize(inventory)
        if inventory.status != ImageInventory.Status.OK:
            return Response(
                {
                    "error": {
                        "code": "conflict",
                        "message": f"the package list of this image is unknown: {inventory.error}",
                        "details": {},
                    }
                },
                status=status.HTTP_409_CONFLICT,
            )
        if kind == "spdx":
            body, suffix = sbom.spdx_json(inventory), "spdx.json"
        else:
            body, suffix = sbom.cyclonedx_json(inventory), "cdx.json"
        response = HttpResponse(body, content_type="application/json")
        response["Content-Disposition"] = (
            f'attachment; filename="sbom-{inventory.image_id}.{suffix}"'
        )
        return response

    @extend_schema(request=ScanRequestSerializer)
    @action(detail=False, methods=["post"])
    def scan(self, request):
        """Read the inventory of one image ({"image": id}) or of a host's images ({"host": id})."""
        wait_seconds(request)
        body = ScanRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        if ("image" in data) == ("host" in data):
            raise InvalidRequest("name exactly one of image or host")
        if "image" in data:
            visible = gate.restrict(Image.objects.all(), request.user, "image.view")
            image = visible.filter(pk=data["image"]).first()
            if image is None:
                gate.not_visible(request.user, "compliance.run", "image", data["image"])
            host = image.host
        else:
            image = None
            host = gate.restrict(Host.objects.all(), request.user, "host.view")
            host = host.filter(pk=data["host"]).first()
            if host is None:
                gate.not_visible(request.user, "compliance.run", "host", data["host"])
        op = inventories.do_scan(
            host=host, image=image, acting_user=request.user, summary=self.summary()
        )
        return operation_response(request, op)


class AdvisoryViewSet(GatedListMixin, GatedViewSet):
    """Advisories matched on images: ?image=, ?container=, ?severity=, ?package=."""

    resource = "compliance"
    gate_actions = {"list": "compliance.view"}
    queryset = ImageAdvisory.objects.select_related("advisory", "inventory")
    serializer_class = AdvisoryMatchSerializer
    filter_backends = []

    def get_queryset(self):
        qs = super().get_queryset()
        params = self.request.query_params
        image = params.get("image")
        container = params.get("container")
        if container:
            row = gate.restrict(Container.objects.all(), self.request.user, "container.view")
            row = row.filter(pk=container).first() if container.isdigit() else None
            if row is None:
                gate.not_visible(self.request.user, "compliance.view", "container", container)
            found = lookups.image_of(row)
            qs = qs.filter(inventory__image=found) if found else qs.none()
        if image:
            if not image.isdigit():
                raise InvalidRequest("image must be an id")
            qs = qs.filter(inventory__image_id=int(image))
        if params.get("severity"):
            if params["severity"] not in (*SEVERITY_ORDER, "unknown"):
                raise InvalidRequest(f"unknown severity {params['severity']!r}")
            qs = qs.filter(severity=params["severity"])
        if params.get("package"):
            qs = qs.filter(package=params["package"])
        return qs.order_by("package", "advisory__osv_id")


class OsvImportViewSet(GatedListMixin, GatedViewSet):
    """OSV imports: list them, or POST a zip (multipart `file`) to import and re-match."""

    resource = "compliance"
    gate_actions = {"list": "compliance.view", "create": "compliance.run"}
    queryset = OsvImport.objects.all()
    serializer_class = OsvImportSerializer
    filter_backends = []

    @extend_schema(request={"multipart/form-data": OsvUploadSerializer})
    def create(self, request):
        """Import the uploaded OSV export; 201 with the counts (skipped records and why)."""
        self.require(OsvImport())
        body = OsvUploadSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        upload = body.validated_data["file"]
        with tempfile.NamedTemporaryFile(suffix=".zip") as tmp:
            for chunk in upload.chunks():
                tmp.write(chunk)
            tmp.flush()
            result, matches = services.do_import_osv(
                tmp.name, filename=upload.name, acting_user=request.user, summary=self.summary()
            )
        data = OsvImportSerializer(result).data | {"matches": matches}
        return Response(data, status=status.HTTP_201_CREATED)
