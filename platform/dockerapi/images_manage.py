"""POST /images/{name}/tag, DELETE /images/{name}, GET /images/{name}/history, POST /images/prune.

The REST API's image.tag, image.remove and image.prune Operations and its history read, with the
same permissions and the tag-ownership rule (images/ownership.py). An image on several hosts
is one image to a Docker client: tag and remove act on each visible copy.
"""

from datetime import datetime

from django.http import HttpResponse, JsonResponse
from registries import services

from dockerapi.errors import DockerError, bad_request, not_supported
from dockerapi.images_common import check_ref, find_images, finish, joined, tag_of
from hosts import placement
from hosts.models import Host
from images import ownership
from images.models import Image
from operations.services import do_host_operation
from rbac import gate

_PRUNE_FILTERS = {"dangling", "until", "label"}


def tag(call, ref):
    """POST /images/{name}/tag?repo=&tag=: 201, as Docker."""
    repo = call.query.get("repo") or ""
    if not repo:
        raise bad_request("repository name (repo) is required")
    new_tag = call.query.get("tag") or "latest"
    if new_tag.startswith("sha256:"):
        raise bad_request("refusing to create a tag with a digest reference")
    new_ref = ownership.canonical(check_ref(joined(repo, new_tag), "tag"))
    summary = call.summary(tag=new_ref)
    gate.require(call.user, "image.tag", resource="image", summary=summary)
    rows = find_images(call, ref, "image.tag")
    # Every copy is decided before any is changed: a refusal leaves nothing half-tagged.
    plans = []
    for row in rows:
        decision = gate.require(call.user, "image.tag", row, summary=summary)
        ownership.check_tag_free(call.user, row.host, new_ref, row.team, summary=summary)
        plans.append((row, decision))
    for row, decision in plans:
        op = do_host_operation(
            decision,
            kind="image.tag",
            target_type="image",
            target_id=row.pk,
            host=row.host,
            team=row.team,
            params={"tag": new_ref},
            acting_user=call.user,
            summary=summary,
        )
        finish(op)
    return HttpResponse(status=201)


def remove(call, ref):
    """DELETE /images/{name}?force=&noprune=: untag (a name of an image with several) or delete;
    an image a container uses is refused with 409 unless forced (then only untagged)."""
    force = call.flag("force")
    call.flag("noprune")  # Berth keeps no parent images to prune: nothing to keep either way
    summary = call.summary()
    rows = find_images(call, ref, "image.delete")
    plans = [(row, gate.require(call.user, "image.delete", row, summary=summary)) for row in rows]
    answer, seen = [], set()
    for row, decision in plans:
        op = do_host_operation(
            decision,
            kind="image.remove",
            target_type="image",
            target_id=row.pk,
            host=row.host,
            team=row.team,
            params={"force": force, "ref": tag_of(row, ref)},
            acting_user=call.user,
            summary=summary,
        )
        try:
            op = finish(op)
        except DockerError as exc:
            if exc.status == 409:
                raise DockerError(409, f"conflict: unable to remove {ref}: {exc.message}") from None
            raise
        for text in (op.result or {}).get("removed") or []:
            key, _, value = text.partition(": ")
            if key in ("Untagged", "Deleted") and (key, value) not in seen:
                seen.add((key, value))
                answer.append({key: value})
    return JsonResponse(answer, safe=False)


def _timestamp(text: str) -> int:
    try:
        return int(datetime.fromisoformat((text or "").replace("Z", "+00:00")).timestamp())
    except ValueError:
        return 0


def history(call, ref):
    """GET /images/{name}/history: the config's history, newest step first."""
    image = find_images(call, ref, "image.view")[0]
    gate.authorize(call.user, "image.view", image, summary=call.summary())
    entries = list(reversed((image.config or {}).get("history") or []))
    if not entries:
        entries = [{"created": (image.created or image.created_at).isoformat()}]
    rows = []
    for index, entry in enumerate(entries):
        rows.append(
            {
                "Id": image.image_id if index == 0 else "<missing>",
                "Created": _timestamp(entry.get("created", "")),
                "CreatedBy": entry.get("created_by", ""),
                "Tags": (image.repo_tags or []) if index == 0 else None,
                "Size": 0,
                "Comment": entry.get("comment", ""),
            }
        )
    return JsonResponse(rows, safe=False)


def prune(call):
    """POST /images/prune?filters=: dangling images (every unused one with dangling=false) and
    stale build cache, on each host the caller may prune, as POST /api/v1/images/prune/."""
    filters = call.filters(_PRUNE_FILTERS)
    for key in ("until", "label"):
        if filters.get(key):
            raise not_supported(f"image prune filter {key!r}")
    dangling = [v.lower() for v in filters.get("dangling", [])]
    if any(v not in ("true", "false", "1", "0") for v in dangling):
        raise bad_request(f"invalid filter 'dangling={dangling[0]}'")
    every = bool(dangling) and dangling[-1] in ("false", "0")
    summary = call.summary()
    plans = prune_plans(call, summary)
    deleted = []
    for host, decision in plans:
        op = services.do_image_operation(
            decision,
            kind="image.prune",
            host=host,
            acting_user=call.user,
            params={"all": every},
            summary=summary,
        )
        op = finish(op)
        for text in (op.result or {}).get("removed") or []:
            key, _, value = text.partition(": ")
            if key in ("Untagged", "Deleted"):
                deleted.append({key: value})
    return JsonResponse({"ImagesDeleted": deleted or None, "SpaceReclaimed": 0})


def prune_plans(call, summary) -> list:
    """(host, decision) for each usable host the caller sees where it may prune images: decided
    host-wide on a public image of each host (global or host grants), as the REST API does."""
    gate.require(call.user, "image.prune", resource="image", summary=summary)
    hosts = gate.restrict(Host.objects.filter(placement.usable_q()), call.user, "host.view")
    return [
        (host, gate.require(call.user, "image.prune", Image(host=host, team=None), summary=summary))
        for host in hosts
    ]
