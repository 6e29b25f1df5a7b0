"""Image, network and volume operations of a host, mapped onto the runtime's stores."""

import contextlib
import shutil
from datetime import datetime
from pathlib import Path

from django.conf import settings

from agent import control_client, remote_files, removed_holders
from images.models import Image
from networks.models import Network
from runtime.errors import Conflict, InvalidSpec, NotFound
from volumes.models import Volume


def _image_row(op, image, team_id=None) -> Image:
    """Create or refresh the row of a runtime image on this host."""
    created = getattr(image, "created", None)
    if isinstance(created, str):
        try:
            created = datetime.fromisoformat(created.replace("Z", "+00:00"))
        except ValueError:
            created = None
    row, made = Image.objects.get_or_create(
        host=op.host,
        image_id=image.id,
        defaults={"team_id": team_id, "imported_by_id": op.created_by_id},
    )
    Image.objects.filter(id=row.id).update(
        repo_tags=list(image.repo_tags),
        size=image.size or 0,
        config=image.config or {},
        created=created,
    )
    return row


def _upload_path(op) -> Path:
    """The uploaded archive: a file of the upload directory, by name (the row is untrusted).

    The path is the web's; an agent with a data directory of its own (another machine) fetches
    the file of that name from the web, which checks that the operation names it
    (agent/remote_files.py)."""
    path = op.params.get("path")
    name = Path(str(path or "")).name
    if not path or name in ("", ".", ".."):
        raise InvalidSpec("image import needs the path of an uploaded archive")
    # Only the name counts: the directory may be another machine's upload directory.
    resolved = Path(settings.UPLOAD_DIR).resolve() / name
    if resolved.is_symlink():
        raise InvalidSpec("the image archive must be an upload of this installation")
    if not resolved.is_file():
        try:
            remote_files.fetch(resolved, operation=op.pk)
        except control_client.ControlPlaneError as err:
            raise NotFound(f"the uploaded archive {name} is gone ({err})") from None
    return resolved


def _sync_tags(rt, op) -> None:
    """Rows follow the store: tags moved by a tag or import, images gone after a remove."""
    present = {image.id: image for image in rt.images.list()}
    Image.objects.filter(host=op.host).exclude(image_id__in=list(present)).delete()
    for row in Image.objects.filter(host=op.host):
        tags = list(present[row.image_id].repo_tags)
        if row.repo_tags != tags:
            Image.objects.filter(id=row.id).update(repo_tags=tags)


def image_import(rt, op):
    """Import a docker-save, OCI or rootfs tar into the store; record the image row."""
    path = _upload_path(op)
    try:
        image = rt.images.import_archive(str(path), ref=op.params.get("ref") or None)
    finally:
        path.unlink(missing_ok=True)  # the upload has served its purpose, imported or not
    row = _image_row(op, image, team_id=op.params.get("team"))
    _sync_tags(rt, op)
    return {"image_id": image.id, "repo_tags": list(image.repo_tags), "image": row.id}


def _target_image(op) -> Image:
    try:
        return Image.objects.get(id=op.target_id, host=op.host)
    except (Image.DoesNotExist, ValueError):
        raise NotFound(f"image {op.target_id} is not on host {op.host.name}") from None


def image_tag(rt, op):
    """Add a name:tag to an image (a tag held by another image moves, as in Docker)."""
    new_ref = op.params.get("tag")
    if not new_ref:
        raise InvalidSpec("tag needs the new reference")
    row = _target_image(op)
    rt.images.tag(row.image_id, new_ref)
    _sync_tags(rt, op)
    return {"image_id": row.image_id, "tag": new_ref}


def image_remove(rt, op):
    """Remove an image; refused while a container of this host uses it unless forced."""
    row = _target_image(op)
    # `ref`: one of the row's own tags (`docker rmi name:tag` only untags while others remain).
    ref = op.params.get("ref") or row.image_id
    if ref != row.image_id and ref not in (row.repo_tags or []):
        raise InvalidSpec(f"{ref} is not a tag of image {row.image_id}")
    live = removed_holders.without_removed(rt, rt.list(), op.host)
    users = [s["id"] for s in live if s.get("image_id") == row.image_id]
    try:
        removed = rt.images.remove(ref, force=bool(op.params.get("force")), users=users)
    except NotFound:
        removed = []
    _sync_tags(rt, op)
    return {"removed": list(removed or [])}


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
    """Remove a network (refused while containers use it); its row goes, freeing the name."""
    net = Network.objects.filter(id=op.target_id, host=op.host).first()
    if net is None:
        return {"removed": None}  # a repeated removal: nothing left to do
    with contextlib.suppress(NotFound):
        # Stopped containers that name the network count too, as in Docker.
        live = removed_holders.without_removed(rt, rt.list(), op.host)
        rt.networks.remove(net.name, users=rt.networks.users(net.name, live))
    net.delete()
    return {"removed": net.name}


def _volume_data(rt, name: str) -> Path:
    """The host directory of a named volume's data (the runtime mounts <volumes>/<name>/_data)."""
    if not name or "/" in name or name in (".", ".."):
        raise InvalidSpec(f"invalid volume name {name!r}")
    return rt.config.volumes_dir / name / "_data"


def volume_create(rt, op):
    """Create a named local volume: its data directory, owned by root, mode 0755."""
    vol = Volume.objects.get(id=op.target_id, host=op.host)
    if vol.driver != "local":
        raise InvalidSpec(f"volume driver {vol.driver!r} is not supported (only local)")
    _volume_data(rt, vol.name).mkdir(parents=True, exist_ok=True)
    Volume.objects.filter(id=vol.id).update(state="ready")
    return {"name": vol.name, "mountpoint": str(_volume_data(rt, vol.name))}


def volume_remove(rt, op):
    """Remove a named volume and its data (refused while a container mounts it)."""
    vol = Volume.objects.filter(id=op.target_id, host=op.host).first()
    if vol is None:
        return {"removed": None}
    users = [
        s["name"]
        for s in removed_holders.without_removed(rt, rt.list(), op.host)
        if any(
            m.get("type") == "volume" and m.get("source") == vol.name
            for m in (s["spec"].get("mounts") or [])
        )
    ]
    if users:
        raise Conflict(f"volume {vol.name} is in use by container(s) {', '.join(users)}")
    shutil.rmtree(_volume_data(rt, vol.name).parent, ignore_errors=True)
    vol.delete()
    return {"removed": vol.name}


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
