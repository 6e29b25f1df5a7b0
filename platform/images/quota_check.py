"""Team image quotas (containers/quotas.py: `images`, `image_bytes`) on every way an image is
added: pulls, builds, loads and imports, from the REST API, the dashboard and the Docker API.

An image's row appears only when its host has finished the work, so the image Operations of the
team that are queued or running (pull, build, load, import) count as images in use; the check
runs in the transaction that writes the new Operation, with the team's row locked
(quotas.enforce), so concurrent pulls or builds cannot together pass the quota. A tag the team's
image on that host already has, or that a pending pull or build there will write, is no new
image. A refusal is the gate's (403, audited; quotas.guarded) and names the quota, its maximum,
what is in use and what this asks.
"""

from django.db import transaction

from containers import quotas
from images import ownership
from images.models import Image
from rbac import gate

ADDING = ("image.pull", "image.build", "image.load", "image.import")


def _held(team, host_id) -> set[str]:
    held: set[str] = set()
    for tags in Image.objects.filter(team=team, host_id=host_id).values_list(
        "repo_tags", flat=True
    ):
        held.update(tags or [])
    return held


def _pending(team) -> list[tuple[int, str]]:
    """(host id, canonical target tag or "") of the team's unfinished image-adding Operations."""
    from operations.models import Operation

    rows = (
        Operation.objects.filter(team=team, kind__in=ADDING)
        .exclude(state__in=Operation.DONE)
        .values_list("host_id", "target_id")
    )
    return [(host_id, ownership.canonical(t) if t else "") for host_id, t in rows]


def pending_images(team) -> int:
    """Images the team's unfinished pulls, builds, loads and imports will add (a tag already held
    on that host, or named twice there, adds one image at most)."""
    count, seen, held = 0, set(), {}
    for host_id, tag in _pending(team):
        if tag:
            if host_id not in held:
                held[host_id] = _held(team, host_id)
            if tag in held[host_id] or (host_id, tag) in seen:
                continue
            seen.add((host_id, tag))
        count += 1
    return count


def new_images(team, host, refs) -> int:
    """How many of `refs` (tags) name no image of the team on the host yet, nor one a pending
    pull or build there will write (at least 1 when no tag is given: an untagged image is
    still an image)."""
    refs = [ownership.canonical(r) for r in refs if r]
    if not refs:
        return 1
    known = _held(team, host.pk) | {t for h, t in _pending(team) if h == host.pk and t}
    return len([r for r in dict.fromkeys(refs) if r not in known])


def enforce(team, host, *, refs=(), size: int = 0) -> None:
    """Raise quotas.QuotaExceeded if the image(s) would pass the team's quotas; call inside the
    transaction that writes the Operation. Nothing to check without a team or quotas."""
    if team is None or not (team.quotas or {}):
        return
    count = new_images(team, host, refs)
    if not count and not size:
        return
    quotas.enforce(team, new_images=count, image_bytes=size, pending_images=pending_images)


def before(team, host, *, refs=(), size: int = 0):
    """A `before` for operations.services.do_host_operation that enforces the quotas."""
    return lambda: enforce(team, host, refs=refs, size=size)


def check(user, action: str, team, host, *, refs=(), size=0, decision=None, summary=None):
    """Refuse (403, audited) at once, before anything is uploaded further or queued; the
    transaction that writes the Operation checks again (`before`)."""
    if team is None or not (team.quotas or {}):
        return
    if decision is None:
        decision = gate.decide(user, action, Image(host=host, team=team), resource="image")
    with quotas.guarded(decision, summary), transaction.atomic():
        enforce(team, host, refs=refs, size=size)
