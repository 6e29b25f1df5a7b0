"""The agent side of stream sessions: relay bytes between a container and a web client.

`agent.relay_terminal(operation_id)` runs on the container's host. It claims the Operation the
web created (after the gate allowed and audited the session), opens the session (agent/sessions.py:
exec on a PTY or on pipes, attach to the container's TTY through the shim's socket, or follow
its log), and relays it over the Channels layer (Redis): output to the session's group, input,
end of input, resizes and close from the agent's own channel. The web side is the dashboard's
terminal (dashboard/consumers.py) or the Docker API's hijacked connections
(dockerapi/hijack_relay.py). The relay runs in a thread so a long session never holds a worker
slot.
"""

import asyncio
import contextlib
import logging
import threading
import time

from celery import shared_task
from channels.layers import get_channel_layer
from django.db import close_old_connections

from agent import admission, claims, containers_ops, lookup, observe
from agent.hostname import this_host
from agent.runtime_handle import get_runtime
from agent.sessions import (
    AttachSession,
    ExecSession,
    LogSession,
    PipeExecSession,
    SessionError,
)
from containers.models import Container
from dashboard import terminal_protocol as proto
from operations.models import Operation

log = logging.getLogger(__name__)
AUTO_REMOVE_GRACE = 3.0  # seconds an ended attach waits for a run --rm container to go
IDLE_SECONDS = 3600  # a session nobody typed into for an hour is closed


async def relay(session, group: str, session_id: str = "") -> None:
    """Pump output to the group and input from the agent's channel until either side ends."""
    door = admission.CommandDoor(session_id or group.removeprefix("berth-term-"), this_host())
    layer = get_channel_layer()
    channel = await layer.new_channel("berth-term-agent.")
    await layer.group_send(group, {"type": proto.READY, "channel": channel})
    loop = asyncio.get_running_loop()
    readable = asyncio.Event()
    open_fds = set(session.fds)
    for fd in open_fds:
        loop.add_reader(fd, readable.set)

    async def output():
        # Until every output descriptor has ended (a PTY: one; a program on pipes: two).
        while open_fds:
            await readable.wait()
            readable.clear()
            for fd in list(open_fds):
                while True:
                    chunks = session.read(fd)
                    if chunks is None:
                        break
                    if not chunks:
                        loop.remove_reader(fd)
                        open_fds.discard(fd)
                        break
                    for stream, data in chunks:
                        await layer.group_send(
                            group, {"type": proto.OUTPUT, "data": data, "stream": stream}
                        )

    async def commands():
        while True:
            try:
                message = await asyncio.wait_for(layer.receive(channel), IDLE_SECONDS)
            except TimeoutError:
                return
            refusal = door.refusal(message)
            if refusal:
                if door.first_refusal():
                    # Recorded once per session: a flood of forgeries must not flood the log.
                    await asyncio.to_thread(door.record, refusal)
                continue
            kind = message.get("type")
            if kind == proto.INPUT:
                session.write(bytes(message.get("data", b""))[: proto.MAX_INPUT])
            elif kind == proto.RESIZE:
                session.resize(*proto.clamp_size(message.get("cols"), message.get("rows")))
            elif kind == proto.EOF:
                session.eof()
            elif kind == proto.CLOSE:
                return

    tasks = [asyncio.ensure_future(output()), asyncio.ensure_future(commands())]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        for fd in open_fds:
            loop.remove_reader(fd)


async def _notify(group: str, message: dict) -> None:
    await get_channel_layer().group_send(group, message)


def run_session(op_id: int, session, group: str, container=None) -> None:
    """Thread body: relay, then close the session and record the outcome."""
    code, error = None, ""
    try:
        asyncio.run(relay(session, group))
    except Exception as err:  # the relay must always end in a recorded outcome
        log.exception("terminal relay of operation %s failed", op_id)
        error = f"relay failed: {err}"
    finally:
        code = session.close()
        if container is not None and isinstance(session, AttachSession | LogSession):
            # The container's own output ended, most often because it exited: record that
            # now, before the client hears the end and asks (docker run, start -a, wait),
            # rather than at the next reconcile pass.
            _observe_now(container)
        message = "" if code is None else f"exit code {code}"
        with contextlib.suppress(Exception):
            asyncio.run(
                _notify(group, {"type": proto.EXIT, "code": code, "message": error or message})
            )
        close_old_connections()
        op = Operation.objects.get(pk=op_id)
        claims.finish(op, result={"exit_code": code}, error=error)
        close_old_connections()


def _observe_now(container) -> None:
    try:
        close_old_connections()
        rt = get_runtime()
        state = lookup.find(rt, container)
        if (container.spec or {}).get("auto_remove"):
            # run --rm: the shim removes it just after the exit; give it a moment.
            deadline = time.monotonic() + AUTO_REMOVE_GRACE
            while state is not None and time.monotonic() < deadline:
                if state.get("status") in ("running", "paused", "restarting"):
                    break
                time.sleep(0.05)
                state = lookup.find(rt, container)
            if state is None:
                observe.record_auto_removed(container)
                return
        if state is not None:
            observe.record(container, state)
    except Exception:  # the reconciler records it later anyway
        log.exception("could not record the state of container %s", container.pk)


def _refuse_root(rt, runtime_id: str, user, params: dict) -> None:
    from runtime.errors import BerthError

    try:
        containers_ops.refuse_root_unless_allowed(rt, runtime_id, user, params)
    except BerthError as err:
        raise SessionError(str(err)) from None


def open_session(op, container):
    """Exec (on a PTY or on pipes), attach to the TTY, or follow the log, as the Operation says."""
    params = op.params
    state = lookup.find(get_runtime(), container)
    if state is None:
        raise SessionError(
            f"container {container.name} does not exist on host {container.host.name}"
        )
    rt = get_runtime()
    mode = params.get("mode")
    if mode == "attach":
        if not (container.spec or {}).get("tty"):
            raise SessionError(f"container {container.name} has no TTY")
        _refuse_root(rt, state["id"], None, params)
        session = AttachSession(rt, state["id"])
        if params.get("cols") and params.get("rows"):
            session.resize(*proto.clamp_size(params.get("cols"), params.get("rows")))
        return session
    if mode == "logs":
        return LogSession(
            rt,
            state["id"],
            tail=params.get("tail"),
            since=params.get("since"),
            timestamps=bool(params.get("timestamps")),
            wait_start=bool(params.get("wait_start")),
        )
    argv = params.get("command") or []
    if not argv or not all(isinstance(a, str) for a in argv):
        raise SessionError("the terminal needs a command")
    user = params.get("user") or None
    env = [e for e in params.get("env") or [] if isinstance(e, str) and "=" in e]
    workdir = params.get("workdir") or None
    _refuse_root(rt, state["id"], user, params)
    if params.get("tty", True):
        cols, rows = proto.clamp_size(params.get("cols"), params.get("rows"))
        return ExecSession(rt, state["id"], argv, cols, rows, user=user, env=env, workdir=workdir)
    return PipeExecSession(
        rt, state["id"], argv, user=user, env=env, workdir=workdir, stdin=bool(params.get("stdin"))
    )


@shared_task(name=proto.TASK_NAME, bind=True)
def relay_terminal(self, operation_id, host=None, envelope=None):
    """Open the terminal session of one Operation and relay it in a thread; returns at once."""
    admission.admit(
        proto.TASK_NAME,
        [operation_id],
        {"host": host} if host else {},
        envelope,
        host=this_host(),
    )
    op = claims.claim(
        int(operation_id), host_name=host or this_host(), task_id=self.request.id or ""
    )
    if op is None or op.kind != proto.OPERATION_KIND:
        if op is not None:
            claims.finish(op, error=f"operation kind {op.kind} is not a terminal")
        return {"started": False}
    group = proto.group_name(op.params.get("session", ""))
    container = (
        Container.objects.select_related("host")
        .filter(pk=op.target_id, host__name=op.host.name)
        .first()
    )
    try:
        if container is None:
            raise SessionError("the container is gone")
        session = open_session(op, container)
    except SessionError as err:
        claims.finish(op, error=str(err))
        asyncio.run(_notify(group, {"type": proto.EXIT, "code": None, "message": str(err)}))
        return {"started": False, "error": str(err)}
    threading.Thread(
        target=run_session,
        args=(op.pk, session, group, container),
        name=f"berth-term-{op.pk}",
        daemon=True,
    ).start()
    return {"started": True}
