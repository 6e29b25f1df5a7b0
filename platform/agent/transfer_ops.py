"""Named volumes moved between hosts: export on the source, import on the target (host drain).

The archive goes through the control plane (transfers/), each side proving itself with its host
key; the target checks the archive against the checksum the web recorded at upload.
"""

import hashlib
import tarfile
import tempfile
from pathlib import Path

from agent import control_client
from runtime.errors import Conflict, InvalidSpec
from runtime.tar_filters import with_filters
from volumes.models import Volume

CHUNK = 1024 * 1024


def _volume(op) -> Volume:
    vol = Volume.objects.filter(id=op.target_id, host_id=op.host_id).first()
    if vol is None:
        raise InvalidSpec(f"volume {op.target_id} is not on host {op.host.name}")
    return vol


def _data_dir(rt, name: str) -> Path:
    if not name or "/" in name or name in (".", ".."):
        raise InvalidSpec(f"invalid volume name {name!r}")
    return rt.config.volumes_dir / name / "_data"


def _scratch(rt) -> Path:
    path = Path(rt.config.root) / "tmp"
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    return path


def _endpoint(op) -> str:
    transfer = str(op.params.get("transfer") or "")
    if len(transfer) != 36:
        raise InvalidSpec("the operation names no transfer")
    return f"/api/v1/transfers/{transfer}/data/"


def volume_export(rt, op):
    """Archive a volume's data (owners and modes kept) and upload it for its new host."""
    vol = _volume(op)
    data = _data_dir(rt, vol.name)
    data.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=_scratch(rt), suffix=".tar.gz") as tmp:
        with tarfile.open(fileobj=tmp, mode="w:gz") as tar:
            tar.add(data, arcname=".")
        tmp.flush()
        digest = hashlib.sha256()
        with open(tmp.name, "rb") as archive:
            while chunk := archive.read(CHUNK):
                digest.update(chunk)
        path = Path(tmp.name)
        control_client.upload(_endpoint(op), path, digest.hexdigest())
        return {"volume": vol.name, "size": path.stat().st_size, "sha256": digest.hexdigest()}


def volume_import(rt, op):
    """Fetch a volume's archive, check it against the recorded checksum, unpack it in place."""
    vol = _volume(op)
    filtering = with_filters()
    if filtering is None:  # PEP 706: never unpack without the filters
        raise InvalidSpec(
            "unpacking a volume needs tarfile's extraction filters "
            "(Python 3.11.4 or newer, or the backports.tarfile package)"
        )
    wanted = str(op.params.get("sha256") or "")
    data = _data_dir(rt, vol.name)
    if data.exists() and any(data.iterdir()):
        raise Conflict(f"volume {vol.name} on host {op.host.name} is not empty; not overwriting it")
    with tempfile.NamedTemporaryFile(dir=_scratch(rt), suffix=".tar.gz") as tmp:
        got = control_client.download(_endpoint(op), Path(tmp.name))
        if not wanted or got != wanted:
            raise InvalidSpec(f"the archive of volume {vol.name} does not match its checksum")
        data.mkdir(parents=True, exist_ok=True)
        with filtering.open(tmp.name, mode="r:gz") as tar:
            # 'tar' keeps owners and modes but refuses paths and links out of the volume.
            tar.extractall(data, filter="tar")
    Volume.objects.filter(id=vol.id).update(state="ready")
    return {"volume": vol.name, "sha256": got}


HANDLERS = {"volume.export": volume_export, "volume.import": volume_import}


def _migration_handlers() -> dict:
    from agent import migrate_ops  # local: keeps the volume steps importable on their own

    return migrate_ops.HANDLERS


HANDLERS.update(_migration_handlers())
