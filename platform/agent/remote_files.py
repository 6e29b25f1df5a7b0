"""Uploads and downloads of an agent that does not share the web's data directory.

On the web's own machine the agent reads the web's uploads and writes its archives in the one
data directory. A host joined from another machine has a data directory of its own: it fetches
an upload it does not find locally, and pushes what it wrote for the web, over the transfer
endpoint (transfers/files.py), each request signed with its host key and naming the operation
or the signed call that named the file (the web refuses anything else). Whether this data
directory is the web's: BERTH_REMOTE_FILES=1/0, else whether it holds the control plane's
private key (only the web's machine does) while the web's URL is known.
"""

import base64
import hashlib
import json
import os
import shutil
from pathlib import Path

from django.conf import settings

from agent import control_client, identity
from compliance import recipes

CHUNK = 1024 * 1024


def remote() -> bool:
    """Whether the web cannot see this agent's data directory: BERTH_REMOTE_FILES=1/0, else
    when the agent knows the web's URL and its data directory lacks the control key."""
    value = os.environ.get("BERTH_REMOTE_FILES", "")
    if value in ("0", "1"):
        return value == "1"
    if Path(settings.BERTH_CONTROL_KEY_FILE).exists():
        return False
    try:
        control_client.base_url()
    except (control_client.ControlPlaneError, identity.MissingIdentity):
        return False  # nowhere to push to: the web's own machine (or a test) it is
    return True


def _endpoint(name: str) -> str:
    return f"/api/v1/transfers/files/{name}/"


def _headers(operation=None, message=None) -> dict:
    if operation is not None:
        return {"X-Berth-Operation": str(operation)}
    return {"X-Berth-Message": base64.b64encode(json.dumps(message).encode()).decode()}


def fetch(path: Path, *, operation=None, message=None) -> Path:
    """`path` (an upload of this data directory), fetched from the web when it is not here."""
    if path.is_file() and not path.is_symlink():
        return path
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    if _restore_kept(path):
        return path
    partial = path.with_name(f".{path.name}.fetch")
    try:
        control_client.download(_endpoint(path.name), partial, headers=_headers(operation, message))
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
    return path


def _restore_kept(path: Path) -> bool:
    """A rebuild's context that this host keeps itself (compliance/recipes.py: the recipe was
    recorded here, where the build ran), copied to `path`; False for any other upload."""
    kept = recipes.kept_for_upload(path.name)
    if kept is None:
        return False
    if not kept.is_file() or kept.is_symlink():
        raise control_client.ControlPlaneError(
            f"the build context {kept.stem[:12]} is no longer kept on this host (pruned)"
        )
    partial = path.with_name(f".{path.name}.kept")
    try:
        shutil.copyfile(kept, partial)
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
    return True


def push(path: Path, *, operation=None, message=None) -> None:
    """Store `path` (an archive written for the web) at the web, then delete it here; nothing
    to do when the web shares this data directory."""
    if not remote():
        return
    digest = hashlib.sha256()
    with open(path, "rb") as archive:
        while chunk := archive.read(CHUNK):
            digest.update(chunk)
    try:
        control_client.upload(
            _endpoint(path.name),
            path,
            digest.hexdigest(),
            headers=_headers(operation, message),
        )
    finally:
        path.unlink(missing_ok=True)
