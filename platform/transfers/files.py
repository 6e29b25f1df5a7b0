"""Uploads and downloads between the web and a host agent that does not share its data directory
(a host joined from another machine): GET /api/v1/transfers/files/<name>/ hands the agent an
upload (a build context, an image archive, a `docker cp` tar), PUT stores what the agent wrote
for the web (`docker save`, `docker cp` out, `docker export`).

Not for people: requests are signed by the host's own key (transfers/hostauth.py), and each file
must be named to that very host in what the web told it:
  X-Berth-Operation: <id>  an unfinished Operation of this host whose params name the upload
                           (`path`), or an image.save whose archive is `<id>.tar`;
  X-Berth-Message: <base64 JSON {"task", "args", "envelope"}>  the call the agent received,
                           still within its signed expiry, sealed by the control plane's key for
                           this host (trust/envelope.py), naming the file (`upload`, or `out`
                           for the archive files-<out>.tar).
An upload can be fetched once (the web deletes it as it sends it); a download stored once (a
second PUT of the same name is refused). Every attempt is audited (transfer.fetch, transfer.push).
"""

import base64
import binascii
import hashlib
import json
import os
import re
from pathlib import Path

from django.conf import settings
from django.http import FileResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from registries.progress import exports_dir

from audit.services import record_event
from operations.models import Operation
from transfers.hostauth import HostAuthFailed, verify
from trust import envelope as sealing
from trust import keys

CHUNK = 1024 * 1024
FILES_TASK = "agent.container_files"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,100}\.tar")


class Refused(Exception):
    """The request may not have this file; `status` and the message say why."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


def _audit(action, outcome, name, reason, host_name=""):
    record_event(
        action=action,
        outcome=outcome,
        reason=reason[:500],
        object_type="file",
        object_id=name[:64],
        summary={"host": host_name[:63]},
    )


def _operation(request, host) -> Operation | None:
    value = request.headers.get("X-Berth-Operation", "")
    if not value:
        return None
    op = Operation.objects.filter(pk=value if value.isdigit() else 0, host=host).first()
    if op is None or op.state in Operation.DONE:
        raise Refused(403, f"operation {value[:20]} is no unfinished operation of this host")
    return op


def _message(request, host) -> list | None:
    """The args of the signed call the agent presents (verified for this host, not expired)."""
    value = request.headers.get("X-Berth-Message", "")
    if not value:
        return None
    try:
        body = json.loads(base64.b64decode(value, validate=True))
        task, args, env = body["task"], body["args"], body["envelope"]
    except (binascii.Error, ValueError, KeyError, TypeError):
        raise Refused(400, "X-Berth-Message is not a message of the control plane") from None
    if task != FILES_TASK:
        raise Refused(403, f"a {task!r} message names no file")
    public = keys.control_public_key()
    try:
        sealing.open_sealed(
            env,
            {keys.key_id(public): public},
            task=task,
            host=host.name,
            args=args,
            skew=settings.BERTH_CHANNEL_SKEW_SECONDS,
        )
    except sealing.Refused as err:
        raise Refused(403, str(err)) from None
    return args


def _named(request, host, name: str, push: bool) -> str:
    """What names `name` to this host (for the audit), or Refused."""
    op = _operation(request, host)
    if op is not None:
        params = op.params or {}
        if push and op.kind == "image.save" and name == f"{op.pk}.tar":
            return f"operation {op.pk}"
        if not push and Path(str(params.get("path") or "")).name == name:
            return f"operation {op.pk}"
        raise Refused(403, f"operation {op.pk} does not name {name}")
    args = _message(request, host)
    if args is not None:
        params = args[2] if len(args) > 2 and isinstance(args[2], dict) else {}
        if not push and params.get("upload") == name:
            return f"{FILES_TASK} {args[1]}"
        if push and f"files-{params.get('out')}.tar" == name:
            return f"{FILES_TASK} {args[1]}"
        raise Refused(403, f"the signed call does not name {name}")
    raise Refused(403, "name the operation (X-Berth-Operation) or call (X-Berth-Message)")


@csrf_exempt
def host_file(request, name):
    """GET: the agent fetches an upload named to it; PUT: it stores an archive for the web."""
    push = request.method == "PUT"
    action = "transfer.push" if push else "transfer.fetch"
    declared = request.headers.get("X-Berth-Content-Sha256", "") if push else ""
    host_name = request.headers.get("Authorization", "").partition("host=")[2].partition(",")[0]
    try:
        if request.method not in ("GET", "PUT"):
            raise Refused(405, "use GET (an upload) or PUT (an archive for the web)")
        try:
            host = verify(
                request.headers.get("Authorization", ""), request.method, request.path, declared
            )
        except HostAuthFailed as err:
            raise Refused(403, str(err)) from None
        host_name = host.name
        if not _NAME.fullmatch(name):
            raise Refused(400, f"invalid file name {name[:64]!r}")
        why = _named(request, host, name, push)
        answer = _store(request, name, declared) if push else _send(name)
    except Refused as err:
        _audit(action, "denied", name, str(err), host_name)
        refused = JsonResponse(
            {"error": {"code": "refused", "message": str(err)}}, status=err.status
        )
        if err.status == 405:
            refused["Allow"] = "GET, PUT"
        return refused
    _audit(action, "allowed", name, f"by host {host_name}, named by {why}", host_name)
    return answer


def _send(name: str):
    path = Path(settings.UPLOAD_DIR) / name
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        raise Refused(404, f"the upload {name} is gone (fetched already?)") from None
    # Once: the name is gone as the file is sent (the open descriptor keeps its data).
    path.unlink(missing_ok=True)
    return FileResponse(os.fdopen(fd, "rb"), content_type="application/x-tar")


def _store(request, name: str, declared: str):
    folder = exports_dir()
    folder.mkdir(parents=True, exist_ok=True)
    final = folder / name
    partial = folder / f".{name}.push"
    if final.exists():
        raise Refused(409, f"{name} was stored already")
    try:
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    except FileExistsError:
        raise Refused(409, f"{name} is being stored already") from None
    try:
        digest, size = hashlib.sha256(), 0
        with os.fdopen(fd, "wb") as out:
            while chunk := request.read(CHUNK):
                size += len(chunk)
                if size > settings.BERTH_MAX_UPLOAD_BYTES:
                    raise Refused(413, "the archive is too large")
                digest.update(chunk)
                out.write(chunk)
        if digest.hexdigest() != declared:
            raise Refused(400, "the archive does not match its signed checksum")
        os.replace(partial, final)
    finally:
        partial.unlink(missing_ok=True)
    return JsonResponse({"size": size, "sha256": declared}, status=201)
