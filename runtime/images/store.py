"""The local image store: import, resolve, list, tag and remove images (issue #3)."""

from __future__ import annotations

import json
import os
from pathlib import Path

from runtime.config import RuntimeConfig
from runtime.errors import Conflict, ImageError, InvalidSpec, KernelError, NotFound
from runtime.images import formats, reference
from runtime.images.importer import Importer, StagedImage
from runtime.images.layout import Layout
from runtime.images.model import Image

REF_NAME = formats.REF_NAME
ID_KEY = "io.berth.image.id"
SIZE_KEY = "io.berth.image.size"
MIN_PREFIX = 12
KINDS = ("docker", "oci", "rootfs")
MANIFEST_MEDIA_TYPE = "application/vnd.oci.image.manifest.v1+json"


class ImageStore:
    """Content-addressed images under `config.images_dir` in OCI image layout."""

    def __init__(self, config: RuntimeConfig):
        self.config = config
        self.layout = Layout(config.images_dir)
        self._docs = {}  # digest -> parsed blob; blobs never change, so this never goes stale

    # Reading -----------------------------------------------------------------------------

    def _doc(self, digest: str) -> dict:
        doc = self._docs.get(digest)
        if doc is None:
            doc = self._docs[digest] = json.loads(self.layout.read_blob(digest))
        return doc

    def _image_id(self, descriptor: dict) -> str:
        annotations = descriptor.get("annotations") or {}
        return annotations.get(ID_KEY) or self._doc(descriptor["digest"])["config"]["digest"]

    def _images(self, descriptors=None) -> list[Image]:
        """Every image in index order, with its tags gathered from all its descriptors."""
        descriptors = self.layout.read_index() if descriptors is None else descriptors
        images = {}
        for descriptor in descriptors:
            image_id = self._image_id(descriptor)
            annotations = descriptor.get("annotations") or {}
            image = images.get(image_id)
            if image is None:
                manifest = self._doc(descriptor["digest"])
                config = self._doc(manifest["config"]["digest"])
                image = images[image_id] = Image(
                    id=image_id,
                    digest=descriptor["digest"],
                    config=config,
                    manifest=manifest,
                    layers=list(config.get("rootfs", {}).get("diff_ids") or []),
                    size=int(annotations.get(SIZE_KEY) or 0),
                )
            if annotations.get(REF_NAME):
                image.repo_tags.append(annotations[REF_NAME])
        return list(images.values())

    def list(self) -> list[Image]:
        """All images, tagged or not."""
        return self._images()

    def _find(self, images: list[Image], ref_or_id: str) -> tuple[Image, str | None]:
        """The image `ref_or_id` names, and the tag if it named one by tag."""
        if not isinstance(ref_or_id, str) or not ref_or_id.strip():
            raise InvalidSpec("an image reference or id is required")
        text = ref_or_id.strip()
        if not text.startswith("sha256:") and reference.is_valid_ref(text):
            tag = reference.normalize_ref(text)
            for image in images:
                if tag in image.repo_tags:
                    return image, tag
        hexpart = text[len("sha256:") :] if text.startswith("sha256:") else text
        if reference.HEX_RE.match(hexpart) and MIN_PREFIX <= len(hexpart) <= 64:
            matches = [image for image in images if image.id[len("sha256:") :].startswith(hexpart)]
            if len(matches) == 1:
                return matches[0], None
            if len(matches) > 1:
                raise NotFound(
                    f"image id prefix {text!r} is ambiguous ({len(matches)} images match)"
                )
        raise NotFound(f"no such image: {text}")

    def resolve(self, ref_or_id: str) -> Image:
        """Find an image by "name[:tag]", "sha256:<id>" or a unique id prefix (12+ hex)."""
        return self._find(self._images(), ref_or_id)[0]

    def inspect(self, ref_or_id: str) -> dict:
        """`docker image inspect` for one image."""
        return self.resolve(ref_or_id).inspect()

    def layer_dirs(self, image: Image) -> list[Path]:
        """The unpacked layer directories of `image`, lowest first (for overlayfs lowerdir)."""
        dirs = []
        for diff_id in image.layers:
            path = self.layout.layer_path(diff_id)
            if path in dirs:
                # The same content twice: the upper copy alone gives the same view.
                dirs.remove(path)
            dirs.append(path)
        for path in dirs:
            if not path.is_dir():
                raise ImageError(
                    f"image {image.short_id}: layer {path.name} is missing from the store"
                )
        return dirs

    # Importing ---------------------------------------------------------------------------

    def import_archive(
        self, path, ref: str | None = None, changes=(), kind: str | None = None
    ) -> Image:
        """Import one image from a docker-save, OCI layout or rootfs tarball (rootfs needs `ref`).

        `kind` forces "docker", "oci" or "rootfs" instead of detecting it; `changes` are
        `docker import -c` lines (rootfs only). An archive with several images yields the first.
        """
        return self.load_archive(path, ref=ref, changes=changes, kind=kind)[0]

    def load_archive(
        self, path, ref: str | None = None, changes=(), kind: str | None = None
    ) -> list[Image]:
        """Import every image of an archive; nothing stays in the store if any check fails."""
        path = os.fspath(path)
        if kind not in (None, *KINDS):
            raise InvalidSpec(f"unknown archive kind {kind!r} (use {', '.join(KINDS)})")
        tag = reference.normalize_ref(ref) if ref else None
        if not os.path.isfile(path):
            raise NotFound(f"no such file: {path}")
        scratch = self.layout.scratch()
        try:
            staged = self._stage(path, scratch, kind, tag, list(changes))
            self.layout.flush(scratch)
            with self.layout.locked():
                self.layout.sweep()
                self._commit(scratch, staged)
        except (OSError, KernelError) as err:
            raise ImageError(f"cannot import {path}: {err}") from None
        finally:
            self.layout.discard(scratch)
        images = self._images()
        by_id = {image.id: image for image in images}
        return [by_id[item.id] for item in staged]

    def _stage(self, path, scratch, kind, tag, changes) -> list[StagedImage]:
        label = os.path.basename(path)
        importer = Importer(self.layout, scratch, label)
        if kind == "rootfs":
            return [self._stage_rootfs(importer, path, tag, changes, label)]
        archive = formats.Archive(path, scratch)
        try:
            kind = kind or archive.kind()
            if kind == "rootfs":
                return [self._stage_rootfs(importer, archive.path, tag, changes, label)]
            if changes:
                raise InvalidSpec("changes (-c) apply only to a root filesystem tarball")
            sources = (
                formats.read_docker(archive) if kind == "docker" else formats.read_oci(archive)
            )
            if tag is not None:
                if len(sources) != 1:
                    raise InvalidSpec(
                        f"{label} holds {len(sources)} images: cannot tag them all {tag}"
                    )
                sources[0].tags = [tag]
            return importer.stage_archive(archive, sources)
        finally:
            archive.close()

    def _stage_rootfs(self, importer, path, tag, changes, label) -> StagedImage:
        if tag is None:
            raise InvalidSpec(
                f"{label} is not an image archive (no manifest.json or index.json); to make an "
                "image of a root filesystem tarball, import it with a reference (import FILE REF)"
            )
        return importer.stage_rootfs(path, tag, changes)

    def _commit(self, scratch: str, staged: list[StagedImage]) -> None:
        """Move staged blobs and layers into place and record the images (lock held)."""
        staged_layers = set(os.listdir(os.path.join(scratch, "layers")))
        for item in staged:
            for diff_id in item.diff_ids:
                if (
                    diff_id.partition(":")[2] not in staged_layers
                    and not self.layout.layer_path(diff_id).is_dir()
                ):
                    raise ImageError(f"layer {diff_id} was removed while importing: try again")
        moved = []
        try:
            for sub, dest in (("blobs", self.layout.blobs), ("layers", self.layout.layers)):
                for name in os.listdir(os.path.join(scratch, sub)):
                    target = dest / name
                    if not target.exists():
                        os.rename(os.path.join(scratch, sub, name), target)
                        moved.append(target)
            descriptors = self.layout.read_index()
            for item in staged:
                descriptors = self._with_image(descriptors, item)
            self.layout.write_index(descriptors)
        except BaseException:
            for target in moved:
                if target.is_dir():
                    self.layout.discard(target)
                else:
                    target.unlink(missing_ok=True)
            raise
        self._collect(descriptors)

    def _with_image(self, descriptors: list[dict], item: StagedImage) -> list[dict]:
        """Descriptors after adding `item` with its tags; tags move as `docker tag` moves them."""
        entries = self._entries(descriptors)
        if item.id not in entries:
            # An image already stored under another manifest keeps that one.
            base = {
                "mediaType": item.manifest_media_type,
                "digest": item.manifest_digest,
                "size": item.manifest_size,
            }
            entries[item.id] = {"base": base, "size": str(item.size), "tags": []}
        for tag in item.tags:
            _move_tag(entries, item.id, tag)
        return _descriptors(entries)

    def _entries(self, descriptors: list[dict]) -> dict:
        """Index descriptors grouped per image id, in order: {id: {base, size, tags}}."""
        entries = {}
        for d in descriptors:
            image_id = self._image_id(d)
            entry = entries.setdefault(
                image_id,
                {"base": d, "size": (d.get("annotations") or {}).get(SIZE_KEY, "0"), "tags": []},
            )
            if _ref(d):
                entry["tags"].append(_ref(d))
        return entries

    # Changing ----------------------------------------------------------------------------

    def tag(self, ref_or_id: str, new_ref: str) -> Image:
        """Add the tag `new_ref` to an image (moving it off another image if needed)."""
        tag = reference.normalize_ref(new_ref)
        with self.layout.locked():
            descriptors = self.layout.read_index()
            image, _ = self._find(self._images(descriptors), ref_or_id)
            entries = self._entries(descriptors)
            _move_tag(entries, image.id, tag)
            self.layout.write_index(_descriptors(entries))
        return self.resolve(image.id)

    def remove(self, ref_or_id: str, force: bool = False, users=()) -> list[str]:
        """Untag or delete an image, as `docker rmi`; returns "Untagged: ..."/"Deleted: ..." lines.

        Removing a tag while other tags remain only untags. Deleting needs `force` when the
        image has several tags (named by id) or when `users` (container ids) still use it;
        forced with users, the image is untagged but kept, since their root filesystems
        stack its layers.
        """
        users = list(users)
        with self.layout.locked():
            descriptors = self.layout.read_index()
            image, tag = self._find(self._images(descriptors), ref_or_id)
            entries = self._entries(descriptors)
            if tag is not None and len(image.repo_tags) > 1:
                entries[image.id]["tags"].remove(tag)
                self.layout.write_index(_descriptors(entries))
                return [f"Untagged: {tag}"]
            if users and not force:
                raise Conflict(
                    f"image {ref_or_id} is in use by container(s) {', '.join(users)}: "
                    "remove them first or force"
                )
            if tag is None and len(image.repo_tags) > 1 and not force:
                raise Conflict(
                    f"image {image.short_id} is referenced by several tags "
                    f"({', '.join(image.repo_tags)}): remove them by name or force"
                )
            lines = [f"Untagged: {t}" for t in image.repo_tags]
            if users:
                entries[image.id]["tags"] = []
            else:
                del entries[image.id]
                lines.append(f"Deleted: {image.id}")
            descriptors = _descriptors(entries)
            self.layout.write_index(descriptors)
            self._collect(descriptors)
        return lines

    def prune(self, in_use=()) -> list[str]:
        """Delete untagged (dangling) images except those whose ids are in `in_use`."""
        keep = set(in_use)
        with self.layout.locked():
            entries = self._entries(self.layout.read_index())
            doomed = [i for i, entry in entries.items() if not entry["tags"] and i not in keep]
            for image_id in doomed:
                del entries[image_id]
            descriptors = _descriptors(entries)
            self.layout.write_index(descriptors)
            self._collect(descriptors)
        return [f"Deleted: {image_id}" for image_id in doomed]

    def _collect(self, descriptors: list[dict]) -> None:
        """Delete blobs and unpacked layers that no image in `descriptors` uses (lock held)."""
        blobs, layers = set(), set()
        for image in self._images(descriptors):
            blobs.add(image.digest.partition(":")[2])
            blobs.add(image.manifest["config"]["digest"].partition(":")[2])
            blobs.update(
                layer["digest"].partition(":")[2] for layer in image.manifest.get("layers") or []
            )
            layers.update(diff_id.partition(":")[2] for diff_id in image.layers)
        for name in os.listdir(self.layout.blobs):
            if name not in blobs:
                (self.layout.blobs / name).unlink(missing_ok=True)
        for name in os.listdir(self.layout.layers):
            if name not in layers:
                self.layout.remove_layer("sha256:" + name)

    def export_docker_archive(self, refs, path) -> None:
        """Write images (one ref or a list) as a `docker save` tarball that `load` reads back."""
        from runtime.images.export import write_docker_archive

        write_docker_archive(self.layout, self._chosen(refs), os.fspath(path))

    def export_oci_archive(self, refs, path) -> None:
        """Write images (one ref or a list) as an OCI image layout tarball."""
        from runtime.images.export import write_oci_archive

        write_oci_archive(self.layout, self._chosen(refs), os.fspath(path))

    def _chosen(self, refs) -> list:
        """[(Image, tags to write)] for refs: a tag names itself, an id all the image's tags."""
        refs = [refs] if isinstance(refs, str) else list(refs)
        images = self._images()
        chosen = []
        for ref in refs:
            image, tag = self._find(images, ref)
            chosen.append((image, [tag] if tag else list(image.repo_tags)))
        return chosen


def _ref(descriptor: dict) -> str | None:
    return (descriptor.get("annotations") or {}).get(REF_NAME)


def _move_tag(entries: dict, image_id: str, tag: str) -> None:
    """Point `tag` at `image_id`; an image losing its last tag stays, untagged (dangling)."""
    for other_id, entry in entries.items():
        if other_id != image_id and tag in entry["tags"]:
            entry["tags"].remove(tag)
    if tag not in entries[image_id]["tags"]:
        entries[image_id]["tags"].append(tag)


def _descriptors(entries: dict) -> list[dict]:
    """index.json descriptors: one per tag, or one without a ref name for an untagged image."""
    result = []
    for image_id, entry in entries.items():
        for tag in entry["tags"] or [None]:
            annotations = {ID_KEY: image_id, SIZE_KEY: str(entry["size"])}
            if tag:
                annotations[REF_NAME] = tag
            result.append(
                {
                    "mediaType": entry["base"].get("mediaType") or MANIFEST_MEDIA_TYPE,
                    "digest": entry["base"]["digest"],
                    "size": entry["base"]["size"],
                    "annotations": annotations,
                }
            )
    return result
