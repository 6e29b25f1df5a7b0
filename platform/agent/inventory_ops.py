"""Image inventories on the host: read each image's package list from its layers, store it
with the image, and match it against the imported advisories (compliance, issue 13).

The Operation row is untrusted input: only images of this operation's host are read, found by
their stored image id, never by a name from the message.
"""

from compliance import inventories
from images.models import Image
from runtime.errors import BerthError, NotFound


def _rows(op) -> list[Image]:
    images = Image.objects.filter(host_id=op.host_id)
    if op.target_id:
        images = images.filter(pk=op.target_id)
        if not images.exists():
            raise NotFound(f"image {op.target_id} is not on host {op.host.name}")
    return list(images)


def image_inventory(rt, op):
    """Read the package inventory of one image (target) or of every image of the host."""
    from runtime.images.inventory import UNKNOWN, Inventory, read_inventory

    scanned, unknown, ids = 0, 0, []
    for row in _rows(op):
        try:
            image = rt.images.resolve(row.image_id)
            found = read_inventory(rt.images.layer_dirs(image))
        except BerthError as err:
            # The store lost the image or a layer: say so, never report it as empty.
            found = Inventory(UNKNOWN, error=f"image unreadable in the store: {err}")
        inventory = inventories.save(row, found.to_dict())
        ids.append(inventory.pk)
        scanned += 1
        unknown += found.status == UNKNOWN
    matched = inventories.rematch(ids)
    return {"scanned": scanned, "unknown": unknown, "advisories": matched}


HANDLERS = {"image.inventory": image_inventory}
