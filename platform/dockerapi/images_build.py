"""POST /build: a tar build context (plain or compressed) built by the host's builder.

The legacy builder's protocol, which the docker CLI speaks when /_ping answers
`Builder-Version: 1`: the body is the context tar, the query names the tag, the Dockerfile,
build arguments and labels; the answer streams `{"stream": "Step 1/3 : FROM busybox\\n"}`
lines from the build log and ends with `{"aux": {"ID": "sha256:..."}}` (or an error line).

The context is checked here, before anything is queued: a body that is not a tar, a member
that leaves the context (`../`, an absolute name, a link pointing out of it), a device node or
FIFO, a missing Dockerfile, or more than the size limit (413 naming it) is refused with nothing
left behind. The build itself is the REST API's image.build Operation (same permission,
the tag-ownership rule, FROM images of the caller's team or public only).
"""

import io
import json
import posixpath
import re
import tarfile
import tempfile
from pathlib import Path

from django.conf import settings
from registries import services

from dockerapi import images_quota
from dockerapi.errors import DockerError, bad_request, not_supported
from dockerapi.images_archive import receive
from dockerapi.images_common import check_ref, error_line, finish, follow, line, team_and_host
from dockerapi.translate import HOST_LABEL, TEAM_LABEL
from images import ownership
from images.models import Image
from operations.services import do_host_operation
from rbac import gate

DEFAULT_MAX_CONTEXT = 256 * 1024 * 1024  # a build context's default cap (bodies stream)
MAX_ENTRIES = 200_000  # files, directories and links in one context
_LABEL_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,254}$")
# Query parameters the CLI sends with their "not given" value; anything else is not honoured.
_EMPTY_OK = {
    "target": ("",),
    "extrahosts": ("",),
    "squash": ("", "0", "false"),
    "outputs": ("", "[]"),
    "remote": ("",),
    "platform": ("", "linux", "linux/amd64", "linux/arm64"),
    "networkmode": ("", "default", "none"),
    "isolation": ("", "default"),
    "version": ("", "1"),
    # Resource limits of RUN steps: Berth's builder applies its own.
    "memory": ("", "0"),
    "memswap": ("", "0"),
    "cpushares": ("", "0"),
    "cpuquota": ("", "0"),
    "cpuperiod": ("", "0"),
    "cpusetcpus": ("",),
    "cpusetmems": ("",),
    "shmsize": ("", "0"),
    "ulimits": ("", "null", "[]"),
}


def max_context() -> int:
    """The largest build context (BERTH_DOCKER_MAX_CONTEXT_BYTES, default 256 MiB)."""
    return int(getattr(settings, "BERTH_DOCKER_MAX_CONTEXT_BYTES", DEFAULT_MAX_CONTEXT))


def _json_map(call, name: str, *, nulls: bool = False) -> dict:
    raw = call.query.get(name)
    if not raw:
        return {}
    try:
        data = json.loads(raw)
    except ValueError:
        raise bad_request(f"invalid JSON in query parameter {name}") from None
    if not isinstance(data, dict) or not all(
        isinstance(k, str) and (isinstance(v, str) or (nulls and v is None))
        for k, v in data.items()
    ):
        raise bad_request(f"{name} must be a JSON object of strings")
    # A build argument given without a value (null) takes the Dockerfile's default.
    return {k: v for k, v in data.items() if v is not None}


def _dockerfile(call) -> str:
    name = call.query.get("dockerfile") or "Dockerfile"
    norm = posixpath.normpath(name)
    if name.startswith("/") or norm == ".." or norm.startswith("../") or len(name) > 255:
        raise bad_request(f"the Dockerfile must be a relative path inside the context: {name!r}")
    return norm


def _unsupported_options(call) -> None:
    for name, fine in _EMPTY_OK.items():
        value = call.query.get(name)
        if value is not None and value not in fine:
            if name == "version":
                raise not_supported("BuildKit builds (version=2); use the classic builder")
            raise not_supported(f"the build option {name}={value!r}")


def check_context(path: Path, dockerfile: str, limit: int) -> set[str]:
    """The member names of a sound context tar; a Docker error for anything else."""
    names, total = set(), 0
    try:
        with tarfile.open(path) as tar:
            for member in tar:
                name = member.name
                norm = posixpath.normpath(name)
                if name.startswith("/") or norm == ".." or norm.startswith("../"):
                    raise bad_request(f"build context: {name!r} is outside the context")
                if member.ischr() or member.isblk() or member.isfifo():
                    raise bad_request(
                        f"build context: {name!r} is a device node or FIFO; only files, "
                        "directories and links may be in a build context"
                    )
                if member.issym() or member.islnk():
                    target = member.linkname
                    base = posixpath.dirname(norm) if member.issym() else ""
                    resolved = posixpath.normpath(posixpath.join(base, target))
                    if target.startswith("/") or resolved == ".." or resolved.startswith("../"):
                        raise bad_request(
                            f"build context: the link {name!r} points outside the context "
                            f"({target!r})"
                        )
                total += max(member.size, 0)
                if total > limit:
                    raise DockerError(
                        413,
                        f"the build context unpacks to more than Berth's limit of {limit} bytes",
                    )
                names.add(norm)
                if len(names) > MAX_ENTRIES:
                    raise DockerError(
                        413,
                        f"the build context holds more than Berth's limit of {MAX_ENTRIES} files",
                    )
    except (tarfile.TarError, EOFError, OSError, ValueError) as exc:
        raise bad_request(
            f"the build context is not a tar archive (plain or gzip): {exc}"
        ) from None
    if dockerfile not in names:
        raise bad_request(f"Cannot locate specified Dockerfile: {dockerfile}")
    return names


def _quoted(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("$", "\\$")
    return f'"{escaped}"'


def with_labels(path: Path, dockerfile: str, labels: dict) -> Path:
    """A copy of the context whose Dockerfile ends with a LABEL of `labels`, which is what
    Docker's classic builder does with --label."""
    for key in labels:
        if not _LABEL_KEY.match(key):
            raise bad_request(f"invalid label name {key!r}")
    pairs = " ".join(f"{_quoted(k)}={_quoted(v)}" for k, v in sorted(labels.items()))
    out = Path(tempfile.mkstemp(prefix="context-", suffix=".tar", dir=path.parent)[1])
    try:
        with tarfile.open(path) as src, tarfile.open(out, "w") as dst:
            for member in src:
                data = src.extractfile(member) if member.isfile() else None
                if posixpath.normpath(member.name) == dockerfile and data is not None:
                    text = data.read().rstrip(b"\n") + f"\nLABEL {pairs}\n".encode()
                    member.size = len(text)
                    dst.addfile(member, io.BytesIO(text))
                else:
                    dst.addfile(member, data)
    except BaseException:
        out.unlink(missing_ok=True)
        raise
    return out


def build(call):
    """POST /build?t=&dockerfile=&buildargs=&nocache=&q=&labels=: stream the build."""
    _unsupported_options(call)
    tags = []
    for given in call.query.getlist("t"):
        if given:
            named = ownership.canonical(check_ref(given, "tag"))
            if "@" in named:
                raise bad_request("a build tag cannot be a digest")
            if named not in tags:
                tags.append(named)
    tag = tags[0] if tags else None
    dockerfile = _dockerfile(call)
    build_args = _json_map(call, "buildargs", nulls=True)
    labels = _json_map(call, "labels")
    quiet, no_cache = call.flag("q"), call.flag("nocache")
    summary = call.summary(tag=tag or "")
    if "buildargs" in summary.get("query", {}):
        # Build arguments often carry secrets: the audit log keeps their names only.
        summary["query"]["buildargs"] = sorted(build_args)
    # Refused (and audited) before the context is read, as POST /api/v1/images/build/ does.
    gate.require(call.user, "image.build", resource="image", summary=summary)
    team, host = team_and_host(call, labels)
    decision = gate.require(
        call.user, "image.build", Image(host=host, team=team), resource="image", summary=summary
    )
    if tag:
        ownership.check_tag_free(call.user, host, tag, team, summary=summary)
    # Further -t names: image.tag on the new image, decided now, tagged once it is built.
    extra = []
    for other in tags[1:]:
        ownership.check_tag_free(call.user, host, other, team, summary=summary)
        extra.append(
            (
                other,
                gate.require(
                    call.user,
                    "image.tag",
                    Image(host=host, team=team),
                    resource="image",
                    summary=summary,
                ),
            )
        )
    images_quota.check(
        call, "image.build", team, host, refs=tags, decision=decision, summary=summary
    )
    limit = max_context()
    path, size = receive(call, "context", limit)
    try:
        check_context(path, dockerfile, limit)
        image_labels = {k: v for k, v in labels.items() if k not in (TEAM_LABEL, HOST_LABEL)}
        if image_labels:
            labelled = with_labels(path, dockerfile, image_labels)
            path.unlink(missing_ok=True)
            path = labelled
        op = services.do_image_operation(
            decision,
            kind="image.build",
            host=host,
            team=team,
            target_id=(tag or "")[:64],
            params={
                "path": str(path),
                "dockerfile": dockerfile,
                "tag": tag,
                "build_args": build_args,
                "no_cache": no_cache,
                "private": team is not None,
            },
            acting_user=call.user,
            summary=summary | {"size": size},
            quota={"refs": tags},
        )
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    after = _TagAfterBuild(call.user, extra, summary, quiet) if extra else None
    return follow(op, _BuildRender(quiet), after=after)


class _TagAfterBuild:
    """The further tags of a build, as image.tag Operations on the image it made."""

    def __init__(self, user, extra, summary, quiet=False):
        self.user, self.extra, self.summary, self.quiet = user, extra, summary, quiet

    def __call__(self, op) -> list[bytes]:
        row = Image.objects.filter(pk=(op.result or {}).get("row") or 0).first()
        if row is None:
            return [error_line("the built image is gone before it could be tagged")]
        lines = []
        for tag, decision in self.extra:
            tagging = do_host_operation(
                decision,
                kind="image.tag",
                target_type="image",
                target_id=row.pk,
                host=row.host,
                team=row.team,
                params={"tag": tag},
                acting_user=self.user,
                summary=self.summary | {"tag": tag},
            )
            try:
                finish(tagging)
            except DockerError as exc:
                return [*lines, error_line(exc.message)]
            if not self.quiet:
                lines.append(line(stream=f"Successfully tagged {tag}\n"))
        return lines


class _BuildRender:
    """The build log as `stream` lines, one per line of text as Docker sends them (none when
    quiet), then the image id or the error."""

    def __init__(self, quiet: bool):
        self.quiet = quiet
        self.partial = ""

    def _lines(self, text: str, done: bool):
        text = self.partial + text
        lines = text.splitlines(keepends=True)
        self.partial = "" if done or not lines or lines[-1].endswith("\n") else lines.pop()
        if not self.quiet:
            for one in lines:
                yield line(stream=one)

    def __call__(self, op, _layers, text):
        yield from self._lines(text, op.is_done)
        if op.state == op.State.FAILED:
            yield error_line(op.error or "the build failed")
        elif op.state == op.State.SUCCEEDED:
            image_id = (op.result or {}).get("image_id") or ""
            if self.quiet:
                yield line(stream=f"{image_id}\n")
            yield line(aux={"ID": image_id})
