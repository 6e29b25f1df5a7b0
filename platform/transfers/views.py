"""The transfer endpoint: the source host's agent uploads an archive once, the target's fetches it.

Not for people: only requests signed by the host's own key (transfers/hostauth.py) pass, and
only the transfer's source may upload, only its target download. Every attempt is audited.
"""

import hashlib
import os
import uuid
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.http import FileResponse, JsonResponse
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt

from audit.services import record_event
from transfers.hostauth import HostAuthFailed, verify
from transfers.models import Transfer

CHUNK = 1024 * 1024


def storage(transfer_id) -> Path:
    """Where the web keeps a transfer's archive until its target has it."""
    return Path(settings.BERTH_TRANSFER_DIR) / f"{transfer_id}.tar.gz"


def _refuse(status: int, message: str, action: str, transfer_id, request):
    record_event(
        action=action,
        outcome="denied",
        reason=message,
        object_type="transfer",
        object_id=transfer_id,
        summary={"claimed_host": _claimed(request)},
    )
    return JsonResponse({"error": {"code": "refused", "message": message}}, status=status)


def _claimed(request) -> str:
    value = request.headers.get("Authorization", "")
    return value.partition("host=")[2].partition(",")[0][:63]


@csrf_exempt
def transfer_data(request, pk):
    """PUT: the source uploads the archive; GET: the target downloads it."""
    action = {"PUT": "transfer.upload", "GET": "transfer.download"}.get(
        request.method, "transfer.data"
    )
    declared = request.headers.get("X-Berth-Content-Sha256", "") if request.method == "PUT" else ""
    try:
        host = verify(
            request.headers.get("Authorization", ""), request.method, request.path, declared
        )
    except HostAuthFailed as err:
        return _refuse(403, str(err), action, str(pk)[:64], request)
    if action == "transfer.data":
        return _refuse(405, "use PUT (the source) or GET (the target)", action, pk, request)
    try:
        transfer = Transfer.objects.filter(pk=uuid.UUID(str(pk))).first()
    except ValueError:
        transfer = None
    if transfer is None or transfer.expires_at < timezone.now():
        return _refuse(
            404, f"no transfer {str(pk)[:64]} (or it expired)", action, str(pk)[:64], request
        )
    if action == "transfer.upload":
        return _upload(request, host, transfer, declared)
    return _download(request, host, transfer)


def _upload(request, host, transfer, declared):
    if transfer.source_id != host.pk:
        return _refuse(
            403,
            f"host {host.name} is not this transfer's source",
            "transfer.upload",
            transfer.pk,
            request,
        )
    if transfer.state != Transfer.State.WAITING:
        return _refuse(
            409, "this transfer was uploaded already", "transfer.upload", transfer.pk, request
        )
    path = storage(transfer.pk)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    digest, size = hashlib.sha256(), 0
    partial = path.with_suffix(".part")
    with open(os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb") as out:
        while chunk := request.read(CHUNK):
            size += len(chunk)
            if size > settings.BERTH_MAX_UPLOAD_BYTES:
                out.close()
                partial.unlink(missing_ok=True)
                return _refuse(
                    413, "the archive is too large", "transfer.upload", transfer.pk, request
                )
            digest.update(chunk)
            out.write(chunk)
    if digest.hexdigest() != declared:
        partial.unlink(missing_ok=True)
        return _refuse(
            400,
            "the archive does not match its signed checksum",
            "transfer.upload",
            transfer.pk,
            request,
        )
    with transaction.atomic():
        changed = Transfer.objects.filter(pk=transfer.pk, state=Transfer.State.WAITING).update(
            state=Transfer.State.STORED, size=size, sha256=declared
        )
        if not changed:
            partial.unlink(missing_ok=True)
            return _refuse(
                409, "this transfer was uploaded already", "transfer.upload", transfer.pk, request
            )
        os.replace(partial, path)
        record_event(
            action="transfer.upload",
            outcome="allowed",
            reason=f"by host {host.name}",
            object_type="transfer",
            object_id=transfer.pk,
            object_repr=str(transfer),
            summary={"size": size, "sha256": declared},
        )
    return JsonResponse({"size": size, "sha256": declared}, status=201)


def _download(request, host, transfer):
    if transfer.target_id != host.pk:
        return _refuse(
            403,
            f"host {host.name} is not this transfer's target",
            "transfer.download",
            transfer.pk,
            request,
        )
    if transfer.state != Transfer.State.STORED:
        return _refuse(
            409,
            f"this transfer is {transfer.state}, not ready to fetch",
            "transfer.download",
            transfer.pk,
            request,
        )
    record_event(
        action="transfer.download",
        outcome="allowed",
        reason=f"by host {host.name}",
        object_type="transfer",
        object_id=transfer.pk,
        object_repr=str(transfer),
    )
    # FileResponse closes the file when the response is done.
    archive = open(storage(transfer.pk), "rb")  # noqa: SIM115
    response = FileResponse(archive, content_type="application/gzip")
    response["X-Berth-Content-Sha256"] = transfer.sha256
    return response
