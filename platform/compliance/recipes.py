"""Build recipes: what Berth records when it builds an image, how it sees that a base image has
a newer digest, and how it builds the image again from the recipe.

Recorded by the host agent after every successful `image.build` (agent/image_ops.py calls
`record`): the context tar is kept once per digest under `<UPLOAD_DIR>/recipes/` (inside the
upload directory, where the agent's build reads contexts from), with the Dockerfile path, the
build arguments and every FROM image with the manifest digest it had.

`check` asks the image's host (`recipe.check`, an audited operation decided as image.pull)
whether each base's tag names another manifest in its registry now. `rebuild` pulls the bases
the last check found newer (`image.pull`) and builds the recorded context under the same tag (`image.build`), each
an audited operation of the acting user; the new build records its own recipe, and the tag now
names the new image, so a rollout with source "none" (or a scheduled one) moves the containers.
"""

import hashlib
import os
import re
import shutil
import uuid
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from compliance.models import BuildRecipe
from hosts import steps
from images.models import Image
from rbac import gate

CHUNK = 1024 * 1024
KEPT_UPLOAD = re.compile(r"recipe-(?P<hex>[0-9a-f]{64})-[0-9a-f]{32}\.tar")


def recipes_dir() -> Path:
    """Where kept contexts live: inside the upload directory (the agent's build reads there)."""
    return Path(settings.UPLOAD_DIR) / "recipes"


def _digest(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            digest.update(chunk)
    return "sha256:" + digest.hexdigest()


def context_path(recipe: BuildRecipe) -> Path:
    """The kept context of a recipe."""
    return recipes_dir() / (recipe.context_digest.partition(":")[2] + ".tar")


KEEP_PER_TAG = 3  # recipes (and their contexts) kept per host and tag


def record(op, context: Path, bases: list[dict], row: Image) -> BuildRecipe | None:
    """Keep the build's context (once per digest) and record the recipe of `row`; an untagged
    build has none (nothing names it to be built again). Older recipes of the tag beyond
    KEEP_PER_TAG go, with the contexts no recipe needs any more."""
    if not op.params.get("tag"):
        return None
    digest = _digest(context)
    folder = recipes_dir()
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    kept = folder / (digest.partition(":")[2] + ".tar")
    if not kept.exists():
        partial = folder / f".{uuid.uuid4().hex}.part"
        shutil.copyfile(context, partial)
        os.replace(partial, kept)
    recipe = BuildRecipe.objects.create(
        host_id=op.host_id,
        team_id=op.team_id if op.params.get("private") else None,
        image_row=row,
        image_id=row.image_id,
        tag=op.params.get("tag") or "",
        dockerfile=op.params.get("dockerfile") or "Dockerfile",
        build_args=op.params.get("build_args") or {},
        context_digest=digest,
        bases=bases,
        created_by_id=op.created_by_id,
    )
    _prune(recipe)
    return recipe


def _prune(recipe: BuildRecipe) -> None:
    same = BuildRecipe.objects.filter(host_id=recipe.host_id, tag=recipe.tag).order_by("-pk")
    old = list(same[KEEP_PER_TAG:])
    for gone in old:
        gone.delete()
        if not BuildRecipe.objects.filter(context_digest=gone.context_digest).exists():
            context_path(gone).unlink(missing_ok=True)


def probe(recipe: BuildRecipe) -> Image:
    """The object the gate decides image steps on: the recipe's host and team."""
    return Image(host=recipe.host, team=recipe.team)


def _operation(recipe, kind, action, acting_user, params, summary, target_id=""):
    decision = steps.audited(acting_user, action, probe(recipe), summary)
    with transaction.atomic():
        op = steps.new_operation(
            kind, recipe.host, recipe.team, "image", target_id, acting_user, params
        )
        gate.record(decision, summary=summary, operation=op)
    return op


def check_operation(recipe: BuildRecipe, acting_user, summary=None):
    """The audited `recipe.check` operation of a recipe (created, not sent)."""
    summary = (summary or {}) | {"recipe": recipe.pk, "step": "recipe.check"}
    return _operation(
        recipe, "recipe.check", "image.pull", acting_user, {"recipe": recipe.pk}, summary
    )


def save_check(recipe: BuildRecipe, result: dict) -> BuildRecipe:
    """Store a check's answer on the recipe."""
    fields = {
        "checked_at": timezone.now(),
        "base_newer": bool(result.get("newer")),
        "check_result": result,
    }
    BuildRecipe.objects.filter(pk=recipe.pk).update(**fields)
    for name, value in fields.items():
        setattr(recipe, name, value)
    return recipe


def check(recipe: BuildRecipe, acting_user, summary=None) -> BuildRecipe:
    """Ask the host whether a base image has a newer digest in its registry; saved on it."""
    op = steps.run(check_operation(recipe, acting_user, summary), "base image check")
    return save_check(recipe, op.result or {})


def rebuild_operations(recipe: BuildRecipe, acting_user, summary=None) -> list:
    """The audited operations of a rebuild, in order (created, not sent): a pull of each base
    that came from a registry, then the build of a copy of the kept context."""
    summary = (summary or {}) | {"recipe": recipe.pk, "tag": recipe.tag}
    ops = []
    # The bases the last check found newer in their registries are pulled; the others (local
    # images, unchanged tags) are used as the host has them.
    newer = [b["ref"] for b in (recipe.check_result or {}).get("bases", []) if b.get("newer")]
    for ref in dict.fromkeys(newer):
        ops.append(
            _operation(
                recipe,
                "image.pull",
                "image.pull",
                acting_user,
                {"ref": ref, "private": recipe.team_id is not None},
                summary | {"step": "image.pull", "ref": ref},
            )
        )
    copy = _rebuild_upload(recipe)
    params = {
        "path": str(copy),
        "dockerfile": recipe.dockerfile,
        "tag": recipe.tag or None,
        "build_args": recipe.build_args,
        "no_cache": False,
        "private": recipe.team_id is not None,
    }
    try:
        ops.append(
            _operation(
                recipe,
                "image.build",
                "image.build",
                acting_user,
                params,
                summary | {"step": "image.build"},
                target_id=recipe.tag[:64],
            )
        )
    except BaseException:
        copy.unlink(missing_ok=True)
        raise
    return ops


def kept_upload_name(digest: str) -> str:
    """The upload name of a rebuild whose context its host restores from its own keep."""
    return f"recipe-{digest.partition(':')[2]}-{uuid.uuid4().hex}.tar"


def kept_for_upload(name: str) -> Path | None:
    """The kept context an upload name of kept_upload_name() asks for (None: another name)."""
    match = KEPT_UPLOAD.fullmatch(name)
    return recipes_dir() / f"{match['hex']}.tar" if match else None


def _rebuild_upload(recipe: BuildRecipe) -> Path:
    """The context upload of a rebuild. The web's own keep is copied (the build removes its
    context when it is done); a host with a data directory of its own (another machine)
    recorded the recipe there, so its context is kept there: the upload then names the digest
    and that host's agent copies it from its keep (agent/remote_files.fetch)."""
    kept = context_path(recipe)
    if not kept.is_file():
        return Path(settings.UPLOAD_DIR) / kept_upload_name(recipe.context_digest)
    copy = Path(settings.UPLOAD_DIR) / f"context-{uuid.uuid4().hex}.tar"
    copy.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(kept, copy)
    return copy


def rebuild(recipe: BuildRecipe, acting_user, summary=None) -> str:
    """Pull the bases again and build the recipe under its tag; the new image id."""
    op = None
    for op in rebuild_operations(recipe, acting_user, summary):
        op = steps.run(op, f"{op.kind} for the rebuild of {recipe}")
    return (op.result or {}).get("image_id", "")


def latest_for_team(team) -> list[BuildRecipe]:
    """The newest recipe of each (host, tag) the team built."""
    seen, out = set(), []
    for recipe in BuildRecipe.objects.filter(team=team).exclude(tag="").select_related("host"):
        if (recipe.host_id, recipe.tag) not in seen:
            seen.add((recipe.host_id, recipe.tag))
            out.append(recipe)
    return out
