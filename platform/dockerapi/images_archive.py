"""Image archives: GET /images/{name}/get and /images/get (save), POST /images/load, and the
rootfs import of POST /images/create?fromSrc=-.

Save is the REST API's image.save Operation (a `docker save` tar written on the host), sent
back as the body and then deleted. Load and import are its image.import Operation on an
upload of the body; the archive's tags are read here first so that a load cannot move a tag
held by another team's image (images/ownership.py), and nothing is queued for a body that
is not an image archive.
"""

import asyncio
import contextlib
import io
import json
import tarfile
import uuid
from pathlib import Path

from django.conf import settings
from django.http import StreamingHttpResponse
from registries import services
from registries.progress import exports_dir

from containers import quotas
from dockerapi import images_quota
from dockerapi.errors import DockerError, bad_request, not_supported
from dockerapi.images_common import check_ref, find_images, finish, joined, line, team_and_host
from images import ownership, quota_check
from images.models import Image
from operations.services import do_host_operation
from rbac import gate

ARCHIVE_WAIT_SECONDS = 300.0
CHUNK = 1 << 20
MAX_SAVE_NAMES = 100


def upload_limit() -> int:
    """The largest image archive a load or import takes (BERTH_MAX_UPLOAD_BYTES)."""
    return int(settings.BERTH_MAX_UPLOAD_BYTES)


def receive(call, prefix: str, limit: int) -> tuple[Path, int]:
    """The request body written to the upload directory (413 past `limit`, 400 when empty).

    Read as a stream, not `request.body`, which Django caps at 8 MiB."""
    settings.UPLOAD_DIR.mkdir(parents=True, exist_ok=True)
    path = Path(settings.UPLOAD_DIR) / f"{prefix}-{uuid.uuid4().hex}.tar"
    size = 0
    try:
        with open(path, "wb") as out:
            while chunk := call.request.read(CHUNK):
                size += len(chunk)
                if size > limit:
                    raise DockerError(
                        413, f"request body is larger than Berth's limit of {limit} bytes"
                    )
                out.write(chunk)
        if size == 0:
            raise bad_request("the request body is empty: send a tar archive")
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return path, size


def archive_tags(path: Path) -> list[str]:
    """The tags a docker-save or OCI-layout archive holds (400 when it is neither)."""
    try:
        with tarfile.open(path) as tar:
            names = {m.name.lstrip("./") for m in tar.getmembers() if m.isfile()}
            if "manifest.json" in names:
                manifest = json.load(tar.extractfile(_member(tar, "manifest.json")))
                return [t for entry in manifest for t in (entry.get("RepoTags") or [])]
            if "index.json" in names:
                index = json.load(tar.extractfile(_member(tar, "index.json")))
                return [
                    m.get("annotations", {}).get("io.containerd.image.name")
                    or m.get("annotations", {}).get("org.opencontainers.image.ref.name", "")
                    for m in index.get("manifests") or []
                    if (m.get("annotations") or {})
                ]
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise bad_request(f"the body is not a tar archive: {exc}") from None
    except (ValueError, AttributeError, TypeError) as exc:
        raise bad_request(f"the archive's manifest is not valid: {exc}") from None
    raise bad_request("the tar is not an image archive (no manifest.json or index.json)")


def _member(tar, name):
    for member in tar.getmembers():
        if member.name.lstrip("./") == name:
            return member
    raise KeyError(name)


def _import(call, *, path, size, ref, team, host, decision, summary, refs=None):
    try:
        # The image quotas again, in the transaction that writes the Operation (unfinished
        # pulls, builds and imports counted: images/quota_check.py).
        with quotas.guarded(decision, summary):
            op = do_host_operation(
                decision,
                kind="image.import",
                target_type="image",
                host=host,
                team=team,
                params={"path": str(path), "ref": ref, "team": team.pk if team else None},
                acting_user=call.user,
                summary=summary | {"size": size},
                before=quota_check.before(team, host, refs=refs or [ref], size=size),
            )
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return finish(op, ARCHIVE_WAIT_SECONDS)


def load(call):
    """POST /images/load?quiet=: a `docker save` (or OCI layout) tar into the caller's team."""
    call.flag("quiet")  # the same lines either way: Berth reports no per-layer progress here
    summary = call.summary()
    gate.require(call.user, "image.import", resource="image", summary=summary)
    team, host = team_and_host(call)
    decision = gate.require(
        call.user, "image.import", Image(host=host, team=team), resource="image", summary=summary
    )
    path, size = receive(call, "load", upload_limit())
    try:
        tags = archive_tags(path)
        for tag in tags:
            ownership.check_tag_free(call.user, host, tag, team, summary=summary)
        images_quota.check(
            call,
            "image.import",
            team,
            host,
            refs=tags,
            size=size,
            decision=decision,
            summary=summary,
        )
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    op = _import(
        call,
        path=path,
        size=size,
        ref=None,
        team=team,
        host=host,
        decision=decision,
        summary=summary | {"tags": tags[:20]},
        refs=tags,
    )
    result = op.result or {}
    shown = result.get("repo_tags") or []
    lines = [line(stream=f"Loaded image: {tag}\n") for tag in shown]
    if not shown and result.get("image_id"):
        lines = [line(stream=f"Loaded image ID: {result['image_id']}\n")]
    return StreamingHttpResponse(iter(lines), content_type="application/json")


def import_rootfs(call):
    """POST /images/create?fromSrc=-&repo=&tag=: a root filesystem tar (`docker import`)."""
    if call.query.get("fromSrc") != "-":
        raise not_supported("import from a URL (give the archive as the body: fromSrc=-)")
    if call.query.getlist("changes") and any(call.query.getlist("changes")):
        raise not_supported("docker import --change")
    repo = call.query.get("repo") or ""
    ref = check_ref(joined(repo, call.query.get("tag"))) if repo else None
    summary = call.summary(ref=ref or "")
    gate.require(call.user, "image.import", resource="image", summary=summary)
    if ref is None:
        raise bad_request("a root filesystem import needs a name: give repo (and tag)")
    team, host = team_and_host(call)
    decision = gate.require(
        call.user, "image.import", Image(host=host, team=team), resource="image", summary=summary
    )
    ownership.check_tag_free(call.user, host, ref, team, summary=summary)
    path, size = receive(call, "import", upload_limit())
    try:
        images_quota.check(
            call,
            "image.import",
            team,
            host,
            refs=[ref],
            size=size,
            decision=decision,
            summary=summary,
        )
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    op = _import(
        call,
        path=path,
        size=size,
        ref=ref,
        team=team,
        host=host,
        decision=decision,
        summary=summary,
    )
    image_id = (op.result or {}).get("image_id") or ""
    return StreamingHttpResponse(iter([line(status=image_id)]), content_type="application/json")


def _save_one(call, ref: str):
    image = find_images(call, ref, "image.save")[0]
    summary = call.summary(image=ref)
    decision = gate.require(call.user, "image.save", image, summary=summary)
    op = services.do_image_operation(
        decision,
        kind="image.save",
        host=image.host,
        team=image.team,
        target_id=image.pk,
        params={"format": "docker"},
        acting_user=call.user,
        summary=summary,
    )
    op = finish(op, ARCHIVE_WAIT_SECONDS)
    path = exports_dir() / f"{op.pk}.tar"
    if not path.is_file():
        raise DockerError(409, f"the host has not written the archive yet (operation {op.pk})")
    return path


def stream_file(path: Path):
    """The archive as the answer, read in worker threads (an async body: Django would read a
    synchronous one whole into memory under ASGI), deleted once sent or abandoned."""

    async def chunks():
        src = await asyncio.to_thread(open, path, "rb")
        try:
            while data := await asyncio.to_thread(src.read, CHUNK):
                yield data
        finally:
            src.close()
            with contextlib.suppress(OSError):
                path.unlink()  # the archive was for this answer only

    return StreamingHttpResponse(chunks(), content_type="application/x-tar")


def save(call, ref):
    """GET /images/{name}/get: a `docker load`-able tar of one image."""
    return stream_file(_save_one(call, ref))


def save_many(call):
    """GET /images/get?names=a&names=b: one `docker load`-able tar of every image named.

    Each image is its own image.save decision and Operation (the host writes one archive per
    image); the archives are then merged here into one: layers and configs once each, one
    manifest.json listing every image."""
    names = list(dict.fromkeys(n for n in call.query.getlist("names") if n))
    if not names:
        raise bad_request("give the images to save: names=<image>")
    if len(names) > MAX_SAVE_NAMES:
        raise bad_request(f"at most {MAX_SAVE_NAMES} images in one archive")
    if len(names) == 1:
        return stream_file(_save_one(call, names[0]))
    parts = []
    try:
        for name in names:
            parts.append(_save_one(call, name))
        merged = exports_dir() / f"merged-{uuid.uuid4().hex}.tar"
        try:
            merge_archives(parts, merged)
        except BaseException:
            merged.unlink(missing_ok=True)
            raise
    finally:
        for part in parts:
            part.unlink(missing_ok=True)
    return stream_file(merged)


def merge_archives(parts: list[Path], into: Path) -> None:
    """Several `docker save` archives as one: entries written once, manifests joined (an image
    named twice keeps one entry with the tags of both)."""
    manifest: list[dict] = []
    by_config: dict[str, dict] = {}
    written: set[str] = set()
    with tarfile.open(into, "w", format=tarfile.PAX_FORMAT) as out:
        for part in parts:
            with tarfile.open(part) as tar:
                for member in tar:
                    name = member.name.lstrip("./")
                    if name == "manifest.json":
                        for entry in json.load(tar.extractfile(member)):
                            known = by_config.get(entry.get("Config"))
                            if known is None:
                                by_config[entry.get("Config")] = entry
                                manifest.append(entry)
                            else:
                                tags = (known.get("RepoTags") or []) + (entry.get("RepoTags") or [])
                                known["RepoTags"] = list(dict.fromkeys(tags))
                        continue
                    if name in written:
                        continue
                    written.add(name)
                    out.addfile(member, tar.extractfile(member) if member.isfile() else None)
        data = json.dumps(manifest).encode()
        info = tarfile.TarInfo("manifest.json")
        info.size, info.mode = len(data), 0o644
        out.addfile(info, io.BytesIO(data))
