"""Team image quotas (containers/quotas.py: `images`, `image_bytes`) on the Docker API's pulls,
builds, loads and imports, checked before anything is queued or uploaded further.

The same check and message as the REST API's import (which quota, its maximum, what is in use,
what this asks), refused through quotas.guarded: the gate's refusal, audited, which the Docker
API answers as 403 `{"message": "Berth refused this request: images: team t's quota is 2, 2
in use, this asks 1 more"}`. A tag the team's image on that host already has is no new image
(a pull or build that replaces it does not add one).
"""

from django.db import transaction

from containers import quotas
from images import ownership
from images.models import Image
from rbac import gate


def new_images(team, host, refs) -> int:
    """How many of `refs` (tags) name no image of the team on the host yet (at least 1 when no
    tag is given: an untagged image is still an image)."""
    refs = [ownership.canonical(r) for r in refs if r]
    if not refs:
        return 1
    held = set()
    for tags in Image.objects.filter(team=team, host=host).values_list("repo_tags", flat=True):
        held.update(tags or [])
    return len([r for r in dict.fromkeys(refs) if r not in held])


def check(call, action: str, team, host, *, refs=(), size: int = 0, decision=None, summary=None):
    """Refuse (403, audited) when the image(s) would pass the team's `images` or `image_bytes`
    quota; nothing to check for a public image (no team) or a team without quotas."""
    if team is None or not (team.quotas or {}):
        return
    count = new_images(team, host, refs)
    if not count and not size:
        return
    if decision is None:
        decision = gate.decide(call.user, action, Image(host=host, team=team), resource="image")
    with quotas.guarded(decision, summary), transaction.atomic():
        quotas.enforce(team, new_images=count, image_bytes=size)
