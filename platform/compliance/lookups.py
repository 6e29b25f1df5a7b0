"""Which image a container runs: its stored reference resolved among its host's image rows."""

from compliance.engine import normalize_ref
from images.models import Image


def image_of(container) -> Image | None:
    """The Image row of the container's reference on its host (tag, id or short id), or None."""
    ref = (container.spec or {}).get("image") or container.image
    wanted = {ref, normalize_ref(ref)}
    for image in Image.objects.filter(host_id=container.host_id):
        if wanted & set(image.repo_tags or []):
            return image
        hexid = image.image_id.split(":", 1)[-1]
        if ref in (image.image_id, hexid) or (len(ref) >= 12 and hexid.startswith(ref)):
            return image
    return None
