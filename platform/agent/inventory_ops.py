"""Compliance's agent operations (issue 13): image inventories (each image's package list read
from its layers, stored with the image and matched against the imported advisories) and the
health look of a rolling update (is the new container running, does its health check pass).

The Operation row is untrusted input: only images of this operation's host are read, found by
their stored image id, never by a name from the message.
"""

from agent import lookup
from compliance import inventories
from containers.models import Container
from containers.not_removed import NOT_REMOVED
from images.models import Image
from runtime.errors import BerthError, NotFound

HEALTH_OUTPUT_BYTES = 2000


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


def _health_argv(config: dict) -> list[str] | None:
    """The image's HEALTHCHECK as an argv (CMD or CMD-SHELL), or None when it has none."""
    test = ((config.get("config") or {}).get("Healthcheck") or {}).get("Test") or []
    if not isinstance(test, list) or not test or test[0] == "NONE":
        return None
    if test[0] == "CMD" and len(test) > 1:
        return [str(a) for a in test[1:]]
    if test[0] == "CMD-SHELL" and len(test) > 1:
        return ["/bin/sh", "-c", str(test[1])]
    return None


def rollout_observe(rt, op):
    """Is the operation's container (of this host) running, and does its image's health check
    pass inside it? {"running", "status", "exit_code", "healthy" (None: no check), "output"}."""
    container = Container.objects.filter(pk=op.target_id, host_id=op.host_id).first()
    if container is None:
        raise NotFound(f"container {op.target_id} is not on host {op.host.name}")
    state = lookup.find(rt, container)
    if state is None:
        return {"running": False, "status": "missing", "exit_code": None, "healthy": None}
    status = state.get("status")
    out = {"running": status == "running", "status": status, "exit_code": state.get("exit_code")}
    out["healthy"] = None
    if status != "running":
        return out
    try:
        argv = _health_argv(rt.images.resolve(container.spec.get("image") or "").config)
    except BerthError:
        argv = None
    if argv is not None:
        code, output = rt.exec(state["id"], argv)
        out["healthy"] = code == 0
        out["output"] = output[-HEALTH_OUTPUT_BYTES:].decode("utf-8", "replace")
    return out


def rollout_images(rt, op):
    """Which image each live container of this host runs, from the runtime's own records
    ({"images": {container pk: image id}}): a tag may name a newer image than a container's."""
    live = (
        Container.objects.filter(host_id=op.host_id)
        .exclude(desired_state=Container.Desired.REMOVED)
        .filter(NOT_REMOVED)
    )
    images = {}
    for container in live:
        state = lookup.find(rt, container)
        if state is not None and state.get("image_id"):
            images[str(container.pk)] = state["image_id"]
    return {"images": images}


def rollout_check(rt, op):
    """Does the registry hold a newer image under the tag this image was pulled by?
    {"ref", "local", "remote", "newer"}: the manifest digests here and in the registry."""
    from agent.image_ops import _registry
    from runtime.registry.pull import client_for, resolve_manifest
    from runtime.registry.reference import parse

    row = _rows(op)[0] if op.target_id else None
    if row is None:
        raise NotFound("a registry check names one image")
    ref = op.params.get("ref") or (row.repo_tags or [None])[0]
    if not ref:
        raise NotFound(f"image {row.image_id[:19]} has no tag to look up in a registry")
    image = rt.images.resolve(row.image_id)
    credentials, insecure = _registry(op, ref)
    _, _, remote = resolve_manifest(client_for(parse(ref), credentials, insecure), parse(ref))
    return {"ref": ref, "local": image.digest, "remote": remote, "newer": remote != image.digest}


def recipe_check(rt, op):
    """Do the bases of a build recipe of this host have newer digests under their tags?
    {"bases": [{"ref", "recorded", "remote", "newer"} or {"ref", "error"}], "newer"}."""
    from compliance.models import BuildRecipe
    from runtime.registry.pull import client_for, resolve_manifest
    from runtime.registry.reference import parse

    recipe = BuildRecipe.objects.filter(pk=op.params.get("recipe"), host_id=op.host_id).first()
    if recipe is None:
        raise NotFound(f"build recipe {op.params.get('recipe')} is not of host {op.host.name}")
    out = []
    for base in recipe.bases:
        ref = base.get("ref") or ""
        try:
            credentials, insecure = _registry_for(op, ref)
            _, _, remote = resolve_manifest(
                client_for(parse(ref), credentials, insecure), parse(ref)
            )
        except (BerthError, OSError, ValueError) as err:
            # A local base (built here, never pushed) or an unreachable registry: not newer.
            out.append({"ref": ref, "error": str(err)[:300]})
            continue
        recorded = base.get("digest") or ""
        out.append(
            {"ref": ref, "recorded": recorded, "remote": remote, "newer": remote != recorded}
        )
    return {"bases": out, "newer": any(b.get("newer") for b in out)}


def _registry_for(op, ref):
    from agent.image_ops import _registry

    return _registry(op, ref)


HANDLERS = {
    "recipe.check": recipe_check,
    "rollout.check": rollout_check,
    "image.inventory": image_inventory,
    "rollout.observe": rollout_observe,
    "rollout.images": rollout_images,
}
