"""/api/v1/registries/ (admins), image actions under /api/v1/images/ and operation progress."""

import uuid

from django.conf import settings
from django.http import FileResponse
from drf_spectacular.utils import extend_schema
from rest_framework.decorators import action
from rest_framework.parsers import MultiPartParser
from rest_framework.response import Response

from api.base import (
    GatedCreateMixin,
    GatedDestroyMixin,
    GatedListMixin,
    GatedRetrieveMixin,
    GatedUpdateMixin,
    GatedViewSet,
)
from api.lookups import pick_host, pick_team
from api.waiting import operation_response, wait_seconds
from config.errors import Conflict, InvalidRequest
from config.ids import as_id
from containers.models import Container
from images import ownership
from images.models import Image
from operations.models import Operation
from rbac import gate
from registries import services
from registries.api import serializers as s
from registries.models import Registry
from registries.progress import exports_dir, progress_body


class RegistryViewSet(
    GatedListMixin,
    GatedRetrieveMixin,
    GatedCreateMixin,
    GatedUpdateMixin,
    GatedDestroyMixin,
    GatedViewSet,
):
    """Registries and their credentials: admins manage them; using one is its own permission."""

    resource = "registry"
    gate_actions = {
        "list": "registry.view",
        "retrieve": "registry.view",
        "create": "registry.manage",
        "update": "registry.manage",
        "partial_update": "registry.manage",
        "destroy": "registry.manage",
    }
    queryset = Registry.objects.all()
    serializer_class = s.RegistrySerializer
    filterset_fields = ["name", "address", "insecure"]
    search_fields = ["name", "address"]
    ordering_fields = ["name", "created_at"]

    def build_instance(self, serializer):
        data = {k: v for k, v in serializer.validated_data.items() if k != "password"}
        return Registry(**data)


class ImageActionViewSet(GatedViewSet):
    """Pull, push, build, search, history, save and prune: each one an Operation on a host."""

    resource = "image"
    gate_actions = {
        "pull": "image.pull",
        "push": "image.push",
        "build": "image.build",
        "search": "image.pull",
        "history": "image.view",
        "save": "image.save",
        "prune": "image.prune",
        "commit": "image.build",
    }
    queryset = Image.objects.select_related("host", "team")
    serializer_class = s.OperationAcceptedSerializer

    def _registry(self, value):
        return services.usable_registry(self.request.user, value, summary=self.summary())

    def _queue(self, decision, **kwargs):
        """Create the Operation (and its audit events) and answer with it."""
        kwargs.setdefault("summary", self.summary())
        op = services.do_image_operation(decision, acting_user=self.request.user, **kwargs)
        return self._answer(op)

    def _answer(self, op):
        """202 (or 200 after ?wait=) with the Operation and its progress URL."""
        return operation_response(
            self.request, op, {"progress": f"/api/v1/operations/{op.pk}/progress/"}
        )

    # -- actions ----------------------------------------------------------------------------

    @extend_schema(request=s.PullSerializer)
    @action(detail=False, methods=["post"])
    def pull(self, request):
        """Pull an image by tag or digest onto a host (202 with the Operation; ?wait=<s>)."""
        wait_seconds(request)
        self.require()
        body = s.PullSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        host = pick_host(request.user, data.get("host"))
        team = pick_team(request.user, data["team"]) if data.get("team") else None
        op = services.do_pull_image(
            request.user,
            ref=data["ref"],
            host=host,
            team=team,
            registry=data.get("registry"),
            summary=self.summary(),
        )
        return self._answer(op)

    @extend_schema(request=s.PushSerializer)
    @action(detail=True, methods=["post"])
    def push(self, request, pk=None):
        """Push the image to a registry under `target` (default: its first tag)."""
        wait_seconds(request)
        image = self.get_object()
        body = s.PushSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        target = data.get("target") or (image.repo_tags[0] if image.repo_tags else "")
        if not target:
            raise InvalidRequest("the image has no tag: give a target name:tag")
        if "@" in target:
            raise InvalidRequest("push to a tag, not a digest")
        registry, use = self._registry(data.get("registry"))
        target = services.place_ref(target, registry)
        services.check_reachable(request.user, target, registry, summary=self.summary())
        decision = self.require(image)
        return self._queue(
            decision,
            kind="image.push",
            host=image.host,
            team=image.team,
            target_id=image.pk,
            params={"target": target, "registry": registry.pk if registry else None},
            summary=self.summary() | {"target": target},
            extra=[use],
        )

    @extend_schema(request=s.SearchSerializer)
    @action(detail=False, methods=["post"])
    def search(self, request):
        """Search a configured registry's catalog (with tags on request) or Docker Hub."""
        wait_seconds(request)
        decision = self.require()
        body = s.SearchSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        host = pick_host(request.user, data.get("host"))
        registry, use = self._registry(data.get("registry"))
        if registry is None and not data["term"].strip():
            raise InvalidRequest("give a search term (or a registry to list its catalog)")
        return self._queue(
            decision,
            kind="image.search",
            host=host,
            params={
                "term": data["term"],
                "registry": registry.pk if registry else None,
                "tags": data["tags"],
            },
            summary=self.summary() | {"term": data["term"]},
            extra=[use],
        )

    @extend_schema(request={"multipart/form-data": s.BuildSerializer})
    @action(detail=False, methods=["post"], parser_classes=[MultiPartParser])
    def build(self, request):
        """Build from an uploaded context tar; the log streams to .../progress/ while it runs."""
        wait_seconds(request)
        self.require()
        body = s.BuildSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        host = pick_host(request.user, data.get("host"))
        team = pick_team(request.user, data["team"]) if data.get("team") else None
        decision = self.require(Image(host=host, team=team))
        ownership.check_tag_free(
            request.user, host, data.get("tag") or "", team, summary=self.summary()
        )
        settings.UPLOAD_DIR.mkdir(parents=True, exist_ok=True)
        path = settings.UPLOAD_DIR / f"context-{uuid.uuid4().hex}.tar"
        with open(path, "wb") as out:
            for chunk in data["context"].chunks():
                out.write(chunk)
        try:
            return self._queue(
                decision,
                kind="image.build",
                host=host,
                team=team,
                target_id=(data.get("tag") or "")[:64],
                params={
                    "path": str(path),
                    "dockerfile": data["dockerfile"],
                    "tag": data.get("tag") or None,
                    "build_args": data["build_args"],
                    "no_cache": data["no_cache"],
                    "private": team is not None,
                },
                summary=self.summary()
                | {"tag": data.get("tag") or "", "size": data["context"].size},
                quota={"refs": [data.get("tag") or ""]},
            )
        except Exception:
            path.unlink(missing_ok=True)
            raise

    @action(detail=True, methods=["get"])
    def history(self, request, pk=None):
        """`docker history` from the image's config, newest step first."""
        image = self.get_object()
        self.authorize(image)
        rows = []
        for entry in reversed((image.config or {}).get("history") or []):
            rows.append(
                {
                    "created": entry.get("created", ""),
                    "created_by": entry.get("created_by", ""),
                    "comment": entry.get("comment", ""),
                    "empty_layer": bool(entry.get("empty_layer")),
                }
            )
        return Response({"image_id": image.image_id, "history": rows})

    @action(detail=True, methods=["get", "post"])
    def save(self, request, pk=None):
        """POST (?layout=docker|oci): write a `docker save` or OCI layout tar on the host;
        GET ?operation=<id>: download it."""
        image = self.get_object()
        if request.method == "POST":
            wait_seconds(request)
            # Not ?format=: DRF reserves that name for choosing a renderer.
            archive_format = request.query_params.get("layout", "docker")
            if archive_format not in ("docker", "oci"):
                raise InvalidRequest(f"layout must be docker or oci, got {archive_format!r}")
            decision = self.require(image)
            return self._queue(
                decision,
                kind="image.save",
                host=image.host,
                team=image.team,
                target_id=image.pk,
                params={"format": archive_format},
                summary=self.summary(),
            )
        self.authorize(image)
        op_id = request.query_params.get("operation", "")
        op = (
            Operation.objects.filter(
                pk=as_id(op_id) or 0,
                kind="image.save",
                target_id=str(image.pk),
                created_by=request.user,
            ).first()
            if op_id
            else None
        )
        if op is None:
            raise InvalidRequest("give ?operation=<id> of your save operation of this image")
        path = exports_dir() / f"{op.pk}.tar"
        if op.state != Operation.State.SUCCEEDED or not path.is_file():
            raise Conflict(f"operation {op.pk} has not produced an archive ({op.state})")
        name = (image.repo_tags[0] if image.repo_tags else image.image_id[7:19]).replace("/", "_")
        return FileResponse(open(path, "rb"), as_attachment=True, filename=f"{name}.tar")

    @extend_schema(request=s.CommitSerializer)
    @action(detail=False, methods=["post"])
    def commit(self, request):
        """Make an image of a container's changes; it belongs to the container's team."""
        wait_seconds(request)
        self.require()
        body = s.CommitSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        visible = gate.restrict(Container.objects.all(), request.user, "container.view")
        key = data["container"]
        container = visible.filter(pk=as_id(key) or 0).first()
        if container is None:
            gate.not_visible(request.user, "container.view", "container", key)
        decision = self.require(Image(host=container.host, team=container.team))
        ownership.check_tag_free(
            request.user, container.host, data["ref"], container.team, summary=self.summary()
        )
        return self._queue(
            decision,
            kind="image.commit",
            host=container.host,
            team=container.team,
            target_id=data["ref"],
            params={
                "container": container.pk,
                "ref": data["ref"],
                "message": data["message"],
                "pause": data["pause"],
                "private": container.team_id is not None,
            },
            summary=self.summary() | {"container": container.pk, "ref": data["ref"]},
        )

    @extend_schema(request=s.PruneSerializer)
    @action(detail=False, methods=["post"])
    def prune(self, request):
        """Remove dangling (or with all=true every unused) images and stale build cache."""
        wait_seconds(request)
        self.require()
        body = s.PruneSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        host = pick_host(request.user, body.validated_data.get("host"))
        # A host-wide action: decided on a public image of that host (global or host grants).
        decision = self.require(Image(host=host, team=None))
        return self._queue(
            decision,
            kind="image.prune",
            host=host,
            params={"all": body.validated_data["all"]},
            summary=self.summary(),
        )


class OperationProgressViewSet(GatedViewSet):
    """GET /api/v1/operations/<id>/progress/?since=<offset>: layer progress and the log tail."""

    resource = "operation"
    gate_actions = {"progress": "operation.view"}
    queryset = Operation.objects.select_related("host")
    serializer_class = s.ProgressSerializer

    @action(detail=True, methods=["get"])
    def progress(self, request, pk=None):
        """The operation's state, per-layer progress and its log from offset `since`."""
        op = self.get_object()
        if request.headers.get("X-Berth-Poll") == "1":
            # A page polling once a second: refusals are audited, allowed reads are not.
            self.require(op)
        else:
            self.authorize(op)
        since = request.query_params.get("since", "0")
        if not since.isdigit():
            raise InvalidRequest("since must be a non-negative integer")
        return Response(progress_body(op, int(since)))
