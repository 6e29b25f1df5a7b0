"""Live migration on the agents: checkpoint and upload on the source, import on the target.

Stop-and-copy (a container with named volumes): the archive travels through the control plane
(transfers/, kind "checkpoint"), each request signed by the host's key. Pre-copy (the rest):
the target listens (checkpoint.receive, its port in the operation's result while it waits),
the source connects to it directly (container.precopy); both prove their host keys on that
connection (runtime/container/precopy_wire.py). The source keeps its checkpoint until the
migration ends, so a failed migration resumes the container from it, where it was.
Post-copy (params mode "postcopy", runtime/container/postcopy.py) takes the same two steps
with a second connection, proven the same way, that carries the memory after the target runs.
"""

import contextlib
import tempfile
from pathlib import Path

from cryptography.exceptions import InvalidSignature

from agent import control_client, identity, lookup, observe
from agent.policy_gate import USERNS_LABEL
from containers.models import Container
from hosts.models import Host
from operations.models import Operation
from runtime.container import checkpoint_verbs, portable, postcopy, precopy, precopy_wire
from runtime.errors import BerthError, InvalidSpec, NotFound
from trust import keys

ACCEPT_SECONDS = 60  # how long the target waits for the source to connect
IO_SECONDS = 300  # how long either side waits for the other mid-transfer


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


def _moving(op) -> tuple[str, dict]:
    """The moving container's name and labels: from the operation (an agent with its own
    PostgreSQL role cannot read a row of another host), else from its row."""
    name, labels = op.params.get("name"), op.params.get("labels")
    if not isinstance(name, str) or not isinstance(labels, dict):
        container = Container.objects.filter(pk=op.target_id).first()
        if container is None:
            raise NotFound(f"container {op.target_id} no longer exists")
        name, labels = container.name, container.spec.get("labels") or {}
    labels = {str(k): str(v) for k, v in labels.items()}
    labels[lookup.LABEL] = f"{op.host.name}/{op.target_id}"
    if op.team_id:
        # The team's user namespace range here, as policy_gate sets it on every container
        # this agent runs (the restore keeps the source's range when it is free here).
        labels[USERNS_LABEL] = f"team-{op.team_id}"
    return name, labels


def import_checkpoint(rt, op):
    """On the target: fetch the archive, check it, restore the container (labelled for here)."""
    name, labels = _moving(op)
    label = labels[lookup.LABEL]
    for state in rt.list():
        if (state["spec"].get("labels") or {}).get(lookup.LABEL) == label:
            return {"runtime_id": state["id"], "state": _snapshot(state)}  # done before
    wanted = str(op.params.get("sha256") or "")
    with tempfile.NamedTemporaryFile(dir=_scratch(rt), suffix=".tar") as tmp:
        got = control_client.download(_endpoint(op), Path(tmp.name))
        if not wanted or got != wanted:
            raise InvalidSpec(f"the checkpoint of {name} does not match its checksum")
        state = rt.restore(tmp.name, name=name, labels=labels)
    return {"runtime_id": state["id"], "state": _snapshot(state)}


def _peer(op, key: str) -> Host:
    host = Host.objects.filter(pk=op.params.get(key)).first()
    if host is None or host.revoked_at is not None or not host.public_key:
        raise InvalidSpec("the other host of this migration is not an enrolled host")
    return host


def _verifier(host: Host):
    public = keys.decode_public(host.public_key)

    def verify(message: bytes, sig: bytes) -> bool:
        try:
            public.verify(sig, message)
        except InvalidSignature:
            return False
        return True

    return verify


def _session(op) -> str:
    session = str(op.params.get("session") or "")
    if len(session) != 16:
        raise InvalidSpec("the operation names no migration session")
    return session


def _postcopy(op) -> bool:
    return op.params.get("mode") == "postcopy"


def _pages_session(op) -> str:
    """The second connection's session (its proofs cannot be replayed on the first)."""
    return f"{_session(op)}/pages"


def precopy_send(rt, op, container):
    """Source: connect to the target, send memory ahead, freeze, send the rest (pre-copy);
    or freeze, send all but the memory, serve the pages the target asks for (post-copy)."""
    state = lookup.find(rt, container)
    if state is None:
        raise NotFound(f"container {container.name} does not exist on host {op.host.name}")
    target = _peer(op, "target_host")
    port = int(op.params.get("port") or 0)
    ch = None
    try:
        ch = precopy_wire.connect(target.address, port, IO_SECONDS)
        pages = precopy_wire.connect(target.address, port, IO_SECONDS) if _postcopy(op) else None
    except OSError as err:
        if ch is not None:
            ch.close()
        raise InvalidSpec(
            f"cannot reach host {target.name} at {target.address}:{port}: {err}"
        ) from None
    sign = identity.current().host_key.sign
    try:
        with ch.sock, pages.sock if pages else contextlib.nullcontext():
            precopy_wire.prove_source(ch, _session(op), op.host.name, sign, _verifier(target))
            if pages:
                precopy_wire.prove_source(
                    pages, _pages_session(op), op.host.name, sign, _verifier(target)
                )
                result = postcopy.send(
                    rt,
                    state["id"],
                    ch,
                    pages.sock,
                    _name(op),
                    tcp_established=bool(op.params.get("tcp_established")),
                )
            else:
                result = precopy.send(
                    rt,
                    state["id"],
                    ch,
                    _name(op),
                    tcp_established=bool(op.params.get("tcp_established")),
                )
    except OSError as err:
        raise precopy_wire.WireError(
            f"the connection to host {target.name} failed: {err}"
        ) from None
    finally:
        with contextlib.suppress(BerthError):
            observe.record(container, rt.state(state["id"]))
    return result


def precopy_receive(rt, op):
    """Target: listen, tell the web the port, take the container from its source, restore it."""
    name, labels = _moving(op)
    source = _peer(op, "source_host")
    session = _session(op)
    listener = precopy_wire.listen()
    try:
        # The web reads the port from here and hands it to the source's agent.
        port = listener.getsockname()[1]
        Operation.objects.filter(pk=op.pk).update(result={"port": port})
        ch = precopy_wire.accept(listener, ACCEPT_SECONDS)
        pages = None
        if _postcopy(op):
            try:
                pages = precopy_wire.accept(listener, ACCEPT_SECONDS)
            except BaseException:
                ch.close()
                raise
    finally:
        listener.close()
    sign = identity.current().host_key.sign
    try:
        with ch.sock, pages.sock if pages else contextlib.nullcontext():
            ch.sock.settimeout(IO_SECONDS)
            precopy_wire.prove_target(ch, session, source.name, sign, _verifier(source))
            if pages:
                pages.sock.settimeout(IO_SECONDS)
                precopy_wire.prove_target(
                    pages, _pages_session(op), source.name, sign, _verifier(source)
                )
                state = postcopy.receive(rt, ch, pages.sock, name=name, labels=labels)
            else:
                state = precopy.receive(rt, ch, name=name, labels=labels)
    except OSError as err:
        raise precopy_wire.WireError(
            f"the connection from host {source.name} failed: {err}"
        ) from None
    return {"runtime_id": state["id"], "state": _snapshot(state)}


def _snapshot(state) -> dict:
    return {k: state.get(k) for k in ("id", "status", "pid", "network")}


CONTAINER_HANDLERS = {"checkpoint": checkpoint, "resume": resume, "precopy": precopy_send}
HANDLERS = {"checkpoint.import": import_checkpoint, "checkpoint.receive": precopy_receive}
