"""What the image calls share: finding an image among the caller's, names, team and host,
waiting for the host, and Docker's JSON-lines progress stream read from the Operation.

Image work runs on the host agent's long lane as Operations (agent/image_ops.py,
agent/resources_ops.py), the same ones the REST API queues; the agent records progress and the
build log in OperationProgress, which the stream here turns into Docker's lines.
"""

import asyncio
import json
import re
import time

from asgiref.sync import sync_to_async
from django.db import connection
from django.http import StreamingHttpResponse
from registries import refs
from registries.models import OperationProgress

from api.lookups import pick_host
from config.errors import InvalidRequest
from dockerapi import where
from dockerapi.errors import DockerError, bad_request
from hosts import placement
from images import ownership
from images.models import Image
from operations import dispatch
from operations.models import Operation
from rbac import gate

WAIT_SECONDS = 60.0  # tag / remove: Docker's calls are synchronous
STREAM_MAX_SECONDS = 1800.0  # pull / push / build: the stream gives up (the Operation goes on)
POLL_SECONDS = 0.3
JSON_LINES = "application/json"


# -- names ------------------------------------------------------------------------------------


_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
_DOMAIN = rf"{_LABEL}(?:\.{_LABEL})*(?::[0-9]+)?"
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
# Docker's reference grammar: [domain/]component(/component)*[:tag][@sha256:digest].
_REFERENCE = re.compile(
    rf"^(?:{_DOMAIN}/)?{_COMPONENT}(?:/{_COMPONENT})*"
    r"(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(?:@sha256:[0-9a-f]{64})?$"
)


def check_ref(ref: str, what: str = "reference") -> str:
    """400 in Docker's words for a malformed image reference."""
    if ref and len(ref) <= 512 and _REFERENCE.match(ref):
        name = ref.partition("@")[0]
        path = name.partition("/")[2] if refs.has_host(name) else name
        if path == path.lower():  # a first part that is no host is a lowercase path
            return ref
    if ref and len(ref) <= 512 and _REFERENCE.match(ref.lower()):
        raise bad_request(f"invalid reference format: repository name ({ref}) must be lowercase")
    raise bad_request(f"invalid reference format: {what} {ref!r}")


def joined(name: str, tag: str | None) -> str:
    """`name` with `tag` (Docker passes them apart: fromImage=busybox&tag=1.36)."""
    if not tag:
        return name
    if tag.startswith("sha256:"):
        return f"{name}@{tag}"
    return f"{name}:{tag}"


def short(image_id: str) -> str:
    """The 12-hex id Docker shows."""
    return image_id.removeprefix("sha256:")[:12]


# -- finding ----------------------------------------------------------------------------------


def visible(call, action: str = "image.view"):
    """The image rows the caller may see."""
    return gate.restrict(Image.objects.select_related("host", "team"), call.user, action)


def find_images(call, ref: str, action: str) -> list[Image]:
    """Every visible row (one per host) of the image `ref` names by tag, id or id prefix;
    an audited 404 otherwise."""
    rows = list(visible(call))
    wanted = ownership.canonical(ref)
    found = [r for r in rows if wanted in (r.repo_tags or []) or ref in (r.repo_tags or [])]
    if not found:
        plain = ref.removeprefix("sha256:")
        if len(plain) >= 4 and all(c in "0123456789abcdef" for c in plain):
            found = [r for r in rows if r.image_id.removeprefix("sha256:").startswith(plain)]
            if len({r.image_id for r in found}) > 1:
                raise bad_request(f"multiple images found with provided prefix: {ref}")
    if not found:
        try:
            gate.not_visible(call.user, action, "image", ref, summary=call.summary())
        except Exception:
            raise DockerError(404, f"No such image: {ref}") from None
    return found


def tag_of(row: Image, ref: str) -> str | None:
    """The row's tag that `ref` names (None when `ref` names the image by id)."""
    wanted = ownership.canonical(ref)
    tags = row.repo_tags or []
    if wanted in tags:
        return wanted
    return ref if ref in tags else None


# -- where new images go ----------------------------------------------------------------------


def team_and_host(call, labels: dict | None = None):
    """The team and host of a new image: the label io.berth.team, else the caller's one team,
    else (several teams) none: a public image, as the REST API's default, which the gate
    allows only with a global grant."""
    try:
        team = where.team_for(call.user, labels)
    except DockerError:
        if (labels or {}).get(where.TEAM_LABEL):
            raise
        team = None
    named = (labels or {}).get(where.HOST_LABEL)
    if named:
        try:
            return team, pick_host(call.user, named)
        except InvalidRequest as exc:
            raise bad_request(exc.message) from None
    try:
        return team, pick_host(call.user, None)  # the one host the caller sees, as the REST API
    except InvalidRequest:
        if team is None:
            raise bad_request(
                f"you may use several hosts: name one with the label {where.HOST_LABEL}=<host>"
            ) from None
        return team, placement.choose(call.user, team)


# -- waiting ----------------------------------------------------------------------------------


def failure(operation) -> DockerError:
    """The Docker error of a failed Operation."""
    error = operation.error or "the host could not do it"
    lowered = error.lower()
    if "image" in lowered and ("not found" in lowered or "no such" in lowered):
        return DockerError(404, f"No such image: {error}")
    return DockerError(409, error)


def finish(operation, seconds: float | None = None):
    """Wait for the Operation (WAIT_SECONDS, or `seconds` for longer work such as archives);
    a failure answers 409 (404 for a missing image). WAIT_SECONDS 0: answer once queued."""
    seconds = WAIT_SECONDS if seconds is None or WAIT_SECONDS <= 0 else seconds
    operation = dispatch.wait_for(operation, seconds)
    if operation.state == Operation.State.FAILED:
        raise failure(operation)
    return operation


def line(**fields) -> bytes:
    """One line of Docker's JSON stream."""
    return json.dumps(fields).encode() + b"\r\n"


def error_line(message: str) -> bytes:
    """The line that makes the docker CLI print the error and exit 1."""
    return line(errorDetail={"message": message}, error=message)


def _look(pk: int, since: int):
    """(operation, layers, new log text, next offset) read in a worker thread."""
    try:
        op = Operation.objects.get(pk=pk)
        progress = OperationProgress.objects.filter(operation_id=pk).first()
    finally:
        connection.close()
    log = (progress.log or "") if progress else ""
    layers = dict(progress.layers or {}) if progress else {}
    return op, layers, log[since:], len(log)


def follow(operation, render, *, seconds: float = STREAM_MAX_SECONDS, after=None):
    """A streamed answer: `render` is a generator function fed with (op, layers, new log text)
    snapshots and yielding lines; it ends when the Operation is done (render is called once
    more with the final state) or the wait is over. `after(op)`, run in a worker thread once
    the Operation succeeded, returns the stream's last lines (more work on its result)."""
    pk = operation.pk

    def finally_(op):
        try:
            return after(op)
        finally:
            connection.close()

    async def body():
        since = 0
        deadline = time.monotonic() + seconds
        while True:
            op, layers, text, since = await sync_to_async(_look, thread_sensitive=False)(pk, since)
            for chunk in render(op, layers, text):
                yield chunk
            if op.is_done:
                if after is not None and op.state == Operation.State.SUCCEEDED:
                    for chunk in await sync_to_async(finally_, thread_sensitive=False)(op):
                        yield chunk
                return
            if time.monotonic() > deadline:
                yield error_line(f"Berth stopped waiting; operation {pk} goes on on the host")
                return
            await asyncio.sleep(POLL_SECONDS)

    return StreamingHttpResponse(body(), content_type=JSON_LINES)
