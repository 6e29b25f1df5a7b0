"""Image operations that use registries and the builder: pull, push, build, search, save, prune.

The Operation row is untrusted input: the registry named by id is reloaded here and must own the
reference (so stored credentials never go to another host), and uploaded contexts must lie in
the upload directory.
"""

import contextlib
import os
from datetime import datetime

from registries.models import Registry
from registries.progress import exports_dir
from registries.recorder import ProgressRecorder

from agent import lookup, remote_files
from agent.resources_ops import _upload_path
from compliance import recipes
from containers.models import Container
from images.models import Image
from runtime.errors import InvalidSpec, NotFound


def _image_row(op, image) -> Image:
    """Create or refresh the image's row; a new row belongs to the operation's team if private."""
    created = None
    if getattr(image, "created", ""):
        with contextlib.suppress(ValueError):
            created = datetime.fromisoformat(image.created.replace("Z", "+00:00"))
    team_id = op.team_id if op.params.get("private") else None
    row, _ = Image.objects.get_or_create(
        host_id=op.host_id,
        image_id=image.id,
        defaults={"team_id": team_id, "imported_by_id": op.created_by_id},
    )
    Image.objects.filter(pk=row.pk).update(
        repo_tags=list(image.repo_tags),
        size=image.size or 0,
        config=image.config or {},
        created=created,
    )
    return row


def _registry(op, ref: str | None):
    """(credentials, insecure) of the operation's registry, checked against `ref`."""
    registry_id = op.params.get("registry")
    if not registry_id:
        return None, False
    registry = Registry.objects.filter(pk=registry_id).first()
    if registry is None:
        raise NotFound(f"registry {registry_id} no longer exists")
    if ref is not None and not registry.owns(ref):
        raise InvalidSpec(f"{ref} is not in registry {registry.address}")
    return registry.credentials(), registry.insecure


def image_pull(rt, op):
    """Pull the reference into the store with live per-layer progress; record the image row."""
    from runtime.registry import pull

    ref = op.params.get("ref") or ""
    credentials, insecure = _registry(op, ref)
    with ProgressRecorder(op.pk) as rec:
        result = pull(
            rt.images, ref, credentials=credentials, insecure=insecure, progress=rec.progress
        )
    row = _image_row(op, result.image)
    return {
        "image_id": result.image.id,
        "digest": result.digest,
        "repo_tags": list(result.image.repo_tags),
        "downloaded": result.downloaded,
        "reused": result.reused,
        "row": row.pk,
    }


def _image(op) -> Image:
    image = Image.objects.filter(pk=op.target_id, host_id=op.host_id).first()
    if image is None:
        raise NotFound(f"image {op.target_id} is not on host {op.host.name}")
    return image


def image_push(rt, op):
    """Push a stored image under the target reference."""
    from runtime.registry import push

    image = _image(op)
    target = op.params.get("target") or ""
    credentials, insecure = _registry(op, target)
    with ProgressRecorder(op.pk) as rec:
        result = push(
            rt.images,
            image.image_id,
            target,
            credentials=credentials,
            insecure=insecure,
            progress=rec.progress,
        )
    return {"digest": result.digest, "uploaded": result.uploaded, "skipped": result.skipped}


def _team_builder(op, bases=None):
    """A Builder whose FROM images must be public or of the operation's own team; each base
    used is appended to `bases` (the build's recipe records them)."""
    from runtime.build import Builder

    class TeamBuilder(Builder):
        def base_image(self, name, log):
            image = super().base_image(name, log)
            if bases is not None:
                bases.append({"ref": name, "image_id": image.id, "digest": image.digest})
            owner = (
                Image.objects.filter(host_id=op.host_id, image_id=image.id)
                .values_list("team_id", flat=True)
                .first()
            )
            # Another team's private image must not leak into this build.
            if owner is not None and owner != op.team_id:
                raise InvalidSpec(f"FROM {name}: the image belongs to another team")
            return image

    return TeamBuilder


def image_build(rt, op):
    """Build the uploaded context; the log goes to the progress row while it runs."""
    context = _upload_path(op)
    bases = []
    try:
        with ProgressRecorder(op.pk) as rec:
            result = _team_builder(op, bases)(rt).build(
                str(context),
                op.params.get("dockerfile") or "Dockerfile",
                op.params.get("tag") or None,
                build_args=op.params.get("build_args") or {},
                log=rec.log,
                no_cache=bool(op.params.get("no_cache")),
            )
        row = _image_row(op, result.image)
        # Issue 13: the recipe (kept context, Dockerfile, bases' digests) for rebuilds.
        recipe = recipes.record(op, context, bases, row)
    finally:
        context.unlink(missing_ok=True)
    return {
        "recipe": recipe.pk if recipe else None,
        "image_id": result.image.id,
        "repo_tags": list(result.image.repo_tags),
        "steps": result.steps,
        "cached_steps": result.cached_steps,
        "row": row.pk,
    }


def image_search(rt, op):
    """A configured registry's catalog (filtered by the term), or Docker Hub's search."""
    from runtime.registry import RegistryClient
    from runtime.registry.search import search_hub, search_registry

    term = op.params.get("term") or ""
    registry_id = op.params.get("registry")
    if not registry_id:
        return {"results": search_hub(term)}
    registry = Registry.objects.filter(pk=registry_id).first()
    if registry is None:
        raise NotFound(f"registry {registry_id} no longer exists")
    user, password = registry.credentials() or (None, None)
    client = RegistryClient(
        registry.address, username=user, password=password, insecure=registry.insecure
    )
    return {"results": search_registry(client, term, with_tags=bool(op.params.get("tags")))}


def image_save(rt, op):
    """Write a `docker save` (or, with format "oci", OCI layout) archive of the image to the
    exports directory (op id as name)."""
    image = _image(op)
    folder = exports_dir()
    folder.mkdir(parents=True, exist_ok=True)
    final = folder / f"{op.pk}.tar"
    partial = folder / f".{op.pk}.tar.part"
    try:
        export = (
            rt.images.export_oci_archive
            if op.params.get("format") == "oci"
            else rt.images.export_docker_archive
        )
        export(image.repo_tags[:1] or [image.image_id], partial)
        os.replace(partial, final)
    finally:
        partial.unlink(missing_ok=True)
    size = final.stat().st_size
    # A host with a data directory of its own hands the archive to the web.
    remote_files.push(final, operation=op.pk)
    return {"size": size, "image_id": image.image_id}


def image_commit(rt, op):
    """`docker commit` of the operation's container (found by its Berth label) as `ref`."""
    from runtime.build.commit import commit

    container = Container.objects.filter(pk=op.params.get("container"), host_id=op.host_id).first()
    state = lookup.find(rt, container) if container is not None else None
    if state is None:
        raise NotFound(f"container {op.params.get('container')} is not on host {op.host.name}")
    image = commit(
        rt,
        state["id"],
        op.params.get("ref") or None,
        message=op.params.get("message") or "",
        author=op.created_by.username if op.created_by_id else "",
        pause=bool(op.params.get("pause", True)),
    )
    row = _image_row(op, image)
    return {"image_id": image.id, "repo_tags": list(image.repo_tags), "row": row.pk}


def image_prune(rt, op):
    """Remove dangling (or all unused) images and stale build cache; drop their rows."""
    from runtime.build.cache import BuildCache
    from runtime.build.commit import prune

    if op.params.get("cache_only"):  # `docker builder prune`: the build cache alone
        return BuildCache(rt.config).clear(rt.images, everything=bool(op.params.get("all")))
    result = prune(rt, all_images=bool(op.params.get("all")), cache=BuildCache(rt.config))
    present = {image.id for image in rt.images.list()}
    Image.objects.filter(host=op.host).exclude(image_id__in=present).delete()
    return result


HANDLERS = {
    "image.pull": image_pull,
    "image.push": image_push,
    "image.build": image_build,
    "image.search": image_search,
    "image.save": image_save,
    "image.prune": image_prune,
    "image.commit": image_commit,
}
