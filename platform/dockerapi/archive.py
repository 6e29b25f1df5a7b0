"""`docker cp` both ways, `docker export` and `docker diff`: the host agent reads and writes.

GET/HEAD/PUT /containers/{id}/archive, GET /containers/{id}/export and /changes go to the
container's host (agent.container_files, agent/files_ops.py). Reading or writing a container's
files is what an exec as root could do, so those calls need container.exec with root allowed
(the same rule as `docker exec -u 0`); `changes` lists names only and needs container.top.
An upload is read whole (at most MAX_ARCHIVE_BYTES, else 413) and its entries are checked
here before anything is sent (dockerapi/tar_rules.py); the agent checks again and refuses
before it writes the first file, so a refused upload leaves nothing half-written.
"""

import base64
import io
import json
import tarfile

from django.http import HttpResponse, JsonResponse

from config.errors import InvalidRequest
from dockerapi.errors import DockerError, bad_request
from dockerapi.refs import find_container
from dockerapi.tar_rules import TarRefused, check_members
from operations import dispatch
from rbac import gate

MAX_ARCHIVE_BYTES = 64 * 1024 * 1024  # as agent/files_ops.py: each way
TIMEOUT_SECONDS = 120.0
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
    result = _ask(call, ref, "get", {"path": path})
    answer = HttpResponse(base64.b64decode(result.get("tar_base64") or ""), content_type=TAR)
    answer[STAT_HEADER] = _stat_header(result.get("stat") or {})
    return answer


def _body(call) -> bytes:
    request = call.request
    try:
        declared = int(request.headers.get("Content-Length") or 0)
    except ValueError:
        raise bad_request("invalid Content-Length") from None
    if declared > MAX_ARCHIVE_BYTES:
        raise _too_large()
    # Read from the stream (request.body stops at the form size limit, far below this one).
    data = request.read(MAX_ARCHIVE_BYTES + 1)
    if len(data) > MAX_ARCHIVE_BYTES:
        raise _too_large()
    return data


def archive_put(call, ref):
    """PUT /archive?path=&noOverwriteDirNonDir=&copyUIDGID=: extract a tar into a directory."""
    path = _path(call)
    params = {
        "path": path,
        "no_overwrite_dir_non_dir": call.flag("noOverwriteDirNonDir"),
        "copy_uid_gid": call.flag("copyUIDGID"),
    }
    container, claims = _decide(call, ref, "put")
    data = _body(call)
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:*") as tar:
            check_members(tar.getmembers())
    except TarRefused as exc:
        raise bad_request(f"Berth refused this archive: {exc}") from None
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise bad_request(f"the body is not a tar archive: {exc}") from None
    params["tar_base64"] = base64.b64encode(data).decode()
    _send(container, claims, "put", params)
    return HttpResponse(status=200)


def export(call, ref):
    """GET /export: the container's root filesystem as a tar."""
    result = _ask(call, ref, "export", {})
    return HttpResponse(base64.b64decode(result.get("tar_base64") or ""), content_type=TAR)


def changes(call, ref):
    """GET /changes: [{"Path", "Kind"}] (0 modified, 1 added, 2 deleted)."""
    result = _ask(call, ref, "changes", {})
    return JsonResponse(result.get("changes") or [], safe=False)
