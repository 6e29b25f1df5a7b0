"""`docker cp` both ways, `docker export` and `docker diff`: the host agent reads and writes.

GET/HEAD/PUT /containers/{id}/archive, GET /containers/{id}/export and /changes go to the
container's host (agent.container_files, agent/files_ops.py). Reading or writing a container's
files is what an exec as root could do, so those calls need container.exec with root allowed
(the same rule as `docker exec -u 0`); `changes` lists names only and needs container.top.

Archives go as files of the data directory the web and the agents share, not through the
broker (as image saves and loads): the agent writes a download to the exports directory under
a name chosen here, streamed to the client and deleted as it is sent (or abandoned); an upload
is streamed to UPLOAD_DIR, its entries checked here (dockerapi/tar_rules.py) before anything is
sent, and deleted once the agent is done. The agent checks again and refuses before it writes
the first file, so a refused upload leaves nothing half-written. At most MAX_ARCHIVE_BYTES each
way (413 past it, checked as the upload streams in from the listener: dockerapi/body_stream.py).
"""

import base64
import json
import tarfile
import uuid

from django.http import HttpResponse, JsonResponse
from registries.progress import exports_dir

from config.errors import InvalidRequest
from dockerapi.errors import DockerError, bad_request
from dockerapi.images_archive import receive, stream_file
from dockerapi.refs import find_container
from dockerapi.tar_rules import TarRefused, check_members
from operations import dispatch
from rbac import gate

MAX_ARCHIVE_BYTES = 4 << 30  # as agent/files_ops.py: each way
TIMEOUT_SECONDS = 600.0
TASK = "agent.container_files"
STAT_HEADER = "X-Docker-Container-Path-Stat"
TAR = "application/x-tar"


def _too_large() -> DockerError:
    return DockerError(
        413, f"the archive is larger than Berth's limit of {MAX_ARCHIVE_BYTES >> 20} MiB"
    )


def _decide(call, ref, op: str, summary_extra=None):
    """The container and the signed claims of the gate's decision (audited) for `op`."""
    action, root = ("container.top", False) if op == "changes" else ("container.exec", True)
    container = find_container(call, ref, action)
    options = {"user": "0"} if root else None
    decision = gate.authorize(
        call.user, action, container, options=options, summary=call.summary(**(summary_extra or {}))
    )
    return container, dispatch.decision_claims(decision, object_id=container.pk, root_allowed=root)


def _send(container, claims, op: str, params: dict):
    """Run one file operation on the container's host; 413 for an archive over the limit."""
    try:
        return dispatch.call_host(
            container.host,
            TASK,
            [container.pk, op, params],
            timeout=TIMEOUT_SECONDS,
            decision=claims,
        )
    except InvalidRequest as exc:
        if "is larger than" in exc.message:
            raise _too_large() from None
        raise


def _ask(call, ref, op: str, params: dict):
    container, claims = _decide(call, ref, op)
    return _send(container, claims, op, params)


def _fetch(call, ref, op: str, params: dict):
    """(result, archive file) of an operation that writes an archive for this call."""
    container, claims = _decide(call, ref, op)
    token = uuid.uuid4().hex
    path = exports_dir() / f"files-{token}.tar"
    try:
        result = _send(container, claims, op, params | {"out": token})
        if not path.is_file():
            raise DockerError(409, "the host did not write the archive")
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return result, path


def _path(call) -> str:
    path = call.query.get("path")
    if not path:
        raise bad_request("path is required (?path=)")
    return path


def _stat_header(stat: dict) -> str:
    return base64.b64encode(json.dumps(stat).encode()).decode()


def archive_get(call, ref):
    """GET /archive?path=: the path as a tar; HEAD: only its stat header."""
    path = _path(call)
    if call.request.method == "HEAD":
        stat = _ask(call, ref, "stat", {"path": path})
        answer = HttpResponse(status=200, content_type=TAR)
        answer[STAT_HEADER] = _stat_header(stat)
        return answer
    result, archive = _fetch(call, ref, "get", {"path": path})
    answer = stream_file(archive)
    answer[STAT_HEADER] = _stat_header(result.get("stat") or {})
    return answer


def _declared(call) -> None:
    try:
        declared = int(call.request.headers.get("Content-Length") or 0)
    except ValueError:
        raise bad_request("invalid Content-Length") from None
    if declared > MAX_ARCHIVE_BYTES:
        raise _too_large()


def archive_put(call, ref):
    """PUT /archive?path=&noOverwriteDirNonDir=&copyUIDGID=: extract a tar into a directory."""
    path = _path(call)
    params = {
        "path": path,
        "no_overwrite_dir_non_dir": call.flag("noOverwriteDirNonDir"),
        "copy_uid_gid": call.flag("copyUIDGID"),
    }
    container, claims = _decide(call, ref, "put")
    _declared(call)
    upload, _size = receive(call, "cp", MAX_ARCHIVE_BYTES)
    try:
        try:
            with tarfile.open(upload, mode="r:*") as tar:
                check_members(tar.getmembers())
        except TarRefused as exc:
            raise bad_request(f"Berth refused this archive: {exc}") from None
        except (tarfile.TarError, EOFError, OSError) as exc:
            raise bad_request(f"the body is not a tar archive: {exc}") from None
        _send(container, claims, "put", params | {"upload": upload.name})
    finally:
        upload.unlink(missing_ok=True)
    return HttpResponse(status=200)


def export(call, ref):
    """GET /export: the container's root filesystem as a tar."""
    _result, archive = _fetch(call, ref, "export", {})
    return stream_file(archive)


def changes(call, ref):
    """GET /changes: [{"Path", "Kind"}] (0 modified, 1 added, 2 deleted)."""
    result = _ask(call, ref, "changes", {})
    return JsonResponse(result.get("changes") or [], safe=False)
