"""Live migration on the agents: checkpoint and upload on the source, import on the target.

The source keeps its checkpoint until the migration ends, so a failed migration resumes the
container from it, where it was (container.resume). The archive travels through the
control plane (transfers/, kind "checkpoint"), each request signed by the host's key.
"""

import tempfile
from pathlib import Path

from agent import control_client, lookup, observe
from containers.models import Container
from runtime.container import checkpoint_verbs, portable
from runtime.errors import InvalidSpec, NotFound


def _scratch(rt) -> Path:
    path = Path(rt.config.root) / "tmp"
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    return path


def _endpoint(op) -> str:
    transfer = str(op.params.get("transfer") or "")
    if len(transfer) != 36:
        raise InvalidSpec("the operation names no transfer")
    return f"/api/v1/transfers/{transfer}/data/"


def _name(op) -> str:
    name = str(op.params.get("checkpoint") or "")
    if not name.startswith("migrate-"):
        raise InvalidSpec("the operation names no migration checkpoint")
    return name


def checkpoint(rt, op, container):
    """Dump the running container (it stops), keep the checkpoint, upload its archive."""
    state = lookup.find(rt, container)
    if state is None:
        raise NotFound(f"container {container.name} does not exist on host {op.host.name}")
    name = _name(op)
    if name not in {c["name"] for c in rt.checkpoints(state["id"])}:
        rt.checkpoint(state["id"], name, tcp_established=bool(op.params.get("tcp_established")))
    with tempfile.NamedTemporaryFile(dir=_scratch(rt), suffix=".tar") as tmp:
        checkpoint_verbs.export_existing(rt, state["id"], name, tmp.name)
        digest = portable._sha256(Path(tmp.name))
        size = Path(tmp.name).stat().st_size
        control_client.upload(_endpoint(op), Path(tmp.name), digest)
    observe.record(container, rt.state(state["id"]))
    return {"sha256": digest, "size": size}


def resume(rt, op, container):
    """A failed migration: restore the container from its checkpoint on the source, as it was."""
    state = lookup.find(rt, container)
    if state is None:
        raise NotFound(f"container {container.name} does not exist on host {op.host.name}")
    if state["status"] not in ("running", "paused"):
        names = {c["name"] for c in rt.checkpoints(state["id"])}
        name = str(op.params.get("checkpoint") or "")
        rt.start(state["id"], checkpoint=name if name in names else None)
    for item in rt.checkpoints(state["id"]):
        if item["name"].startswith("migrate-"):
            rt.checkpoint_remove(state["id"], item["name"])
    observe.record(container, rt.state(state["id"]))
    return {"status": rt.state(state["id"])["status"]}


def import_checkpoint(rt, op):
    """On the target: fetch the archive, check it, restore the container (labelled for here)."""
    container = Container.objects.filter(pk=op.target_id).first()
    if container is None:
        raise NotFound(f"container {op.target_id} no longer exists")
    label = f"{op.host.name}/{container.pk}"
    for state in rt.list():
        if (state["spec"].get("labels") or {}).get(lookup.LABEL) == label:
            return {"runtime_id": state["id"], "state": _snapshot(state)}  # done before
    wanted = str(op.params.get("sha256") or "")
    with tempfile.NamedTemporaryFile(dir=_scratch(rt), suffix=".tar") as tmp:
        got = control_client.download(_endpoint(op), Path(tmp.name))
        if not wanted or got != wanted:
            raise InvalidSpec(f"the checkpoint of {container.name} does not match its checksum")
        labels = dict(container.spec.get("labels") or {})
        labels[lookup.LABEL] = label
        state = rt.restore(tmp.name, name=container.name, labels=labels)
    return {"runtime_id": state["id"], "state": _snapshot(state)}


def _snapshot(state) -> dict:
    return {k: state.get(k) for k in ("id", "status", "pid", "network")}


CONTAINER_HANDLERS = {"checkpoint": checkpoint, "resume": resume}
HANDLERS = {"checkpoint.import": import_checkpoint}
