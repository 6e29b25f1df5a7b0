"""/api/v1/images/: list, inspect, import by upload, tag, remove."""

import re
import uuid

from django.conf import settings
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.decorators import action
from rest_framework.parsers import MultiPartParser

from api.base import GatedListMixin, GatedRetrieveMixin, GatedViewSet
from api.fields import StrictSerializer, check_upload_size
from api.lookups import pick_host, pick_team
from api.waiting import operation_response, wait_seconds
from containers import quotas
from images import ownership, quota_check
from images.models import Image
from operations.services import do_host_operation

REF_RE = re.compile(r"^[a-z0-9][a-z0-9._/-]{0,200}(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?$")


class ImageSerializer(serializers.ModelSerializer):
    """An image as the API shows it."""

    class Meta:
        model = Image
        fields = [
            "id",
            "image_id",
            "repo_tags",
            "host",
            "team",
            "size",
            "config",
            "created",
            "created_at",
        ]
        read_only_fields = fields


class ImageImportSerializer(StrictSerializer):
    """Multipart upload: a docker-save, OCI-layout or rootfs tar."""

    file = serializers.FileField(validators=[check_upload_size])
    ref = serializers.RegexField(REF_RE, required=False, default="", allow_blank=True)
    host = serializers.CharField(required=False)
    team = serializers.CharField(
        required=False, help_text="owner team; empty for a public image (global grant only)"
    )


class TagSerializer(StrictSerializer):
    """A new name:tag for an image."""

    tag = serializers.RegexField(REF_RE)


class ImageViewSet(GatedListMixin, GatedRetrieveMixin, GatedViewSet):
    """Images on the hosts."""

    resource = "image"
    gate_actions = {
        "list": "image.view",
        "retrieve": "image.view",
        "import_archive": "image.import",
        "tag": "image.tag",
        "destroy": "image.delete",
    }
    queryset = Image.objects.all()
    serializer_class = ImageSerializer
    filterset_fields = ["host", "team", "image_id"]
    search_fields = ["image_id", "repo_tags"]
    ordering_fields = ["created_at", "size", "image_id"]

    @extend_schema(request={"multipart/form-data": ImageImportSerializer})
    @action(detail=False, methods=["post"], url_path="import", parser_classes=[MultiPartParser])
    def import_archive(self, request):
        """Upload an image tar; the host agent imports it (202 with the Operation)."""
        wait_seconds(request)
        # Refuse (and audit) before the body names a team the caller may not even see.
        self.require()
        body = ImageImportSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        host = pick_host(request.user, data.get("host"))
        team = pick_team(request.user, data["team"]) if data.get("team") else None
        decision = self.require(Image(host=host, team=team))
        ownership.check_tag_free(request.user, host, data["ref"], team, summary=self.summary())
        settings.UPLOAD_DIR.mkdir(parents=True, exist_ok=True)
        path = settings.UPLOAD_DIR / f"{uuid.uuid4().hex}.tar"
        with open(path, "wb") as out:
            for chunk in data["file"].chunks():
                out.write(chunk)
        size = data["file"].size

        try:
            with quotas.guarded(decision, summary=self.summary()):
                op = do_host_operation(
                    decision,
                    kind="image.import",
                    target_type="image",
                    host=host,
                    team=team,
                    params={
                        "path": str(path),
                        "ref": data["ref"] or None,
                        "team": team.pk if team else None,
                    },
                    acting_user=request.user,
                    summary=self.summary() | {"ref": data["ref"], "size": size},
                    # In the writing transaction: the team's image quotas count this upload.
                    before=quota_check.before(team, host, refs=[data["ref"]], size=size),
                )
        except Exception:
            path.unlink(missing_ok=True)
            raise
        return operation_response(request, op)

    @extend_schema(request=TagSerializer)
    @action(detail=True, methods=["post"])
    def tag(self, request, pk=None):
        """Add a name:tag to the image."""
        wait_seconds(request)
        image = self.get_object()
        body = TagSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        decision = self.require(image)
        ownership.check_tag_free(
            request.user, image.host, body.validated_data["tag"], image.team, summary=self.summary()
        )
        op = do_host_operation(
            decision,
            kind="image.tag",
            target_type="image",
            target_id=image.pk,
            host=image.host,
            team=image.team,
            params={"tag": body.validated_data["tag"]},
            acting_user=request.user,
            summary=self.summary() | {"tag": body.validated_data["tag"]},
        )
        return operation_response(request, op)

    def destroy(self, request, pk=None):
        """Remove the image from its host (refused there while containers use it, unless ?force=1)."""
        wait_seconds(request)
        image = self.get_object()
        decision = self.require(image)
        op = do_host_operation(
            decision,
            kind="image.remove",
            target_type="image",
            target_id=image.pk,
            host=image.host,
            team=image.team,
            params={"force": request.query_params.get("force") in ("1", "true")},
            acting_user=request.user,
            summary=self.summary(),
        )
        return operation_response(request, op)
