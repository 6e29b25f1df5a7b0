"""Image rows follow the host's image store: images built outside Berth appear, gone ones go.

An image found in the store without a row (the `busybox` base image that scripts/berth-up
builds, or one made with the `berth` command line) becomes a shared image (team None), which
every user who may view images sees. Rows are never created or removed while an image
operation of this host is in flight or finished during the pass: that operation writes its own
row, with its own team, and a private import must never be caught half-way and made shared.
"""

import contextlib
import logging
from datetime import datetime

from django.utils import timezone

from hosts.models import Host
from images.models import Image
from operations.models import Operation

log = logging.getLogger(__name__)


def _created(image):
    created = getattr(image, "created", None)
    if isinstance(created, str) and created:
        with contextlib.suppress(ValueError):
            return datetime.fromisoformat(created.replace("Z", "+00:00"))
    return None


def _image_work_since(host_name: str, since) -> bool:
    """Whether an image operation of the host is pending, running, or ended after `since`."""
    ops = Operation.objects.filter(host__name=host_name, kind__startswith="image.")
    return (
        ops.filter(state__in=(Operation.State.PENDING, Operation.State.RUNNING)).exists()
        or ops.filter(finished_at__gte=since).exists()
    )


def sync_images(host_name: str, rt) -> dict:
    """Add rows for store images without one, drop rows of images gone, refresh tags."""
    nothing = {"images_added": 0, "images_removed": 0}
    host = Host.objects.filter(name=host_name).first()
    if host is None:
        return nothing  # not registered yet: its first heartbeat makes the row
    since = timezone.now()
    present = {image.id: image for image in rt.images.list()}
    if _image_work_since(host_name, since):
        return nothing  # the next pass catches up
    removed, _ = Image.objects.filter(host=host).exclude(image_id__in=list(present)).delete()
    known = dict(Image.objects.filter(host=host).values_list("image_id", "repo_tags"))
    added = 0
    for image_id, image in present.items():
        tags = list(image.repo_tags)
        if image_id not in known:
            Image.objects.create(
                host=host,
                team=None,
                image_id=image_id,
                repo_tags=tags,
                size=image.size or 0,
                config=image.config or {},
                created=_created(image),
            )
            added += 1
        elif known[image_id] != tags:
            Image.objects.filter(host=host, image_id=image_id).update(repo_tags=tags)
    if added or removed:
        log.info("images of host %s: %d added, %d removed", host_name, added, removed)
    return {"images_added": added, "images_removed": removed}
