"""Image, network and volume operations of a host, mapped onto the runtime's stores."""

import contextlib
import shutil
from datetime import datetime

from django.conf import settings
from django.utils import timezone

from images.models import Image
from networks.models import Network
from runtime.errors import InvalidSpec, NotFound
from volumes.models import Volume


def _image_row(op, image) -> Image:
    created = getattr(image, "created", None)
    if isinstance(created, str):
        try:
            created = datetime.fromisoformat(created.replace("Z", "+00:00"))
        except ValueError:
            created = None
    row, _ = Image.objects.update_or_create(
        host=op.host,
        image_id=image.id,
        defaults={
            "repo_tags": list(image.repo_tags),
            "size": image.size or 0,
            "config": image.config or {},
            "created": created,
        },
    )
    if row.team_id is None and op.team_id and op.params.get("private"):
        Image.objects.filter(id=row.id).update(team_id=op.team_id)
    if row.imported_by_id is None and op.created_by_id:
        Image.objects.filter(id=row.id).update(imported_by_id=op.created_by_id)
    return row


def _upload_path(op):
    """The uploaded archive, which must lie inside the upload directory (the row is untrusted)."""
    path = op.params.get("path") or op.params.get("upload")
    if not path:
        raise InvalidSpec("image import needs the path of an uploaded archive")
    from pathlib import Path

    resolved = Path(path).resolve()
    root = Path(settings.UPLOAD_DIR).resolve()
    if root not in resolved.parents:
        raise InvalidSpec("image archive must be an upload of this installation")
    if not resolved.is_file():
        raise NotFound(f"uploaded archive {resolved.name} is gone")
    return resolved


def image_import(rt, op):
    """Import a docker-save, OCI or rootfs tar into the store; record the image row."""
    path = _upload_path(op)
    try:
        image = rt.images.import_archive(str(path), ref=op.params.get("ref") or None)
    finally:
        if op.params.get("delete_upload", True):
            path.unlink(missing_ok=True)
    row = _image_row(op, image)
    return {"image_id": image.id, "repo_tags": list(image.repo_tags), "row": row.id}


def image_tag(rt, op):
    """Add a tag to an image."""
    ref, new_ref = (
        op.params.get("image") or op.target_id,
        op.params.get("tag") or op.params.get("new_ref"),
    )
    if not new_ref:
        raise InvalidSpec("tag needs the new reference")
    rt.images.tag(ref, new_ref)
    image = rt.images.resolve(new_ref)
    _image_row(op, image)
    return {"image_id": image.id, "repo_tags": list(image.repo_tags)}


def image_remove(rt, op):
    """Remove an image (or one tag of it); refused while a container uses it unless forced."""
    ref = op.params.get("image") or op.target_id
    users = [
        s["id"] for s in rt.list() if s.get("image_id") and s.get("image_id") == _image_id(rt, ref)
    ]
    try:
        removed = rt.images.remove(ref, force=bool(op.params.get("force")), users=users)
    except NotFound:
        removed = []
    still = {i.id for i in rt.images.list()}
    Image.objects.filter(host=op.host).exclude(image_id__in=still).delete()
    for image in rt.images.list():
        Image.objects.filter(host=op.host, image_id=image.id).update(
            repo_tags=list(image.repo_tags)
        )
    return {"removed": removed}


def _image_id(rt, ref):
    try:
        return rt.images.resolve(ref).id
    except NotFound:
        return None


def network_create(rt, op):
    """Create a bridge network with the row's subnet and gateway."""
    net = Network.objects.get(id=op.target_id)
    try:
        info = rt.networks.inspect(net.name)
    except NotFound:
        info = rt.networks.create(net.name, subnet=net.subnet or None, gateway=net.gateway or None)
    info = info if isinstance(info, dict) else {}
    Network.objects.filter(id=net.id).update(
        state="ready",
        subnet=info.get("subnet") or net.subnet,
        gateway=info.get("gateway") or net.gateway,
    )
    return {"name": net.name, "subnet": info.get("subnet"), "gateway": info.get("gateway")}


def network_remove(rt, op):
    """Remove a network; gone already counts as done."""
    name = (
        op.params.get("name")
        or Network.objects.filter(id=op.target_id).values_list("name", flat=True).first()
    )
    if not name:
        raise NotFound("network row is gone and the operation names no network")
    with contextlib.suppress(NotFound):
        rt.networks.remove(name)
    Network.objects.filter(id=op.target_id).update(state="removed")
    return {"removed": name}


def _volume_dir(rt, name):
    if "/" in name or name in ("", ".", ".."):
        raise InvalidSpec(f"invalid volume name {name!r}")
    return rt.config.volumes_dir / name


def volume_create(rt, op):
    """Create a named local volume (a directory the runtime mounts by name)."""
    vol = Volume.objects.get(id=op.target_id)
    if vol.driver != "local":
        raise InvalidSpec(f"volume driver {vol.driver!r} is not supported (only local)")
    if getattr(rt, "volumes", None) is not None:
        rt.volumes.create(vol.name)
    else:
        _volume_dir(rt, vol.name).mkdir(parents=True, exist_ok=True)
    Volume.objects.filter(id=vol.id).update(state="ready")
    return {"name": vol.name}


def volume_remove(rt, op):
    """Remove a named volume and its data."""
    name = (
        op.params.get("name")
        or Volume.objects.filter(id=op.target_id).values_list("name", flat=True).first()
    )
    if not name:
        raise NotFound("volume row is gone and the operation names no volume")
    if getattr(rt, "volumes", None) is not None:
        with contextlib.suppress(NotFound):
            rt.volumes.remove(name)
    else:
        shutil.rmtree(_volume_dir(rt, name), ignore_errors=True)
    Volume.objects.filter(id=op.target_id).update(state="removed")
    return {"removed": name, "at": timezone.now().isoformat()}


HANDLERS = {
    "image.import": image_import,
    "image.tag": image_tag,
    "image.remove": image_remove,
    "image.delete": image_remove,
    "network.create": network_create,
    "network.remove": network_remove,
    "network.delete": network_remove,
    "volume.create": volume_create,
    "volume.remove": volume_remove,
    "volume.delete": volume_remove,
}
