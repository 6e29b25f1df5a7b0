"""The local image store: OCI layout on disk, layers unpacked once and stacked by overlayfs."""

from runtime.images.model import Image
from runtime.images.store import ImageStore

__all__ = ["Image", "ImageStore"]
