"""The hijacked calls: attach and exec start, decided here before the connection is upgraded.

The docker CLI sends `POST /containers/{id}/attach` and `POST /exec/{id}/start` with
`Upgrade: tcp`, and after `101 UPGRADED` the connection carries the container's streams both
ways. Only the Docker API listener (dockerapi/listener.py) can upgrade a connection; it calls
`prepare()` with the request, which authenticates, finds the object, asks the gate and answers a
`Plan`, or raises the DockerError that the listener answers instead of the upgrade. Nothing
reaches a host before the plan's `open()` queues the session (operations/sessions.py).
"""

import re
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime

from django.db import connection

from containers.models import Container
from dashboard import terminal_protocol as proto
from dockerapi import execs, frames, render, router
from dockerapi.auth import authenticate
from dockerapi.call import Call
from dockerapi.errors import DockerError, bad_request
from dockerapi.refs import find_container
from operations.sessions import queue_session
from rbac import gate

ATTACH_RE = re.compile(r"containers/(?P<ref>[^/]+)/attach/?")
EXEC_START_RE = re.compile(r"exec/(?P<exec_id>[^/]+)/start/?")
DEFAULT_DETACH_KEYS = "ctrl-p,ctrl-q"


def is_hijack(method: str, rest: str) -> bool:
    """Whether this path is one the listener upgrades."""
    return method == "POST" and bool(ATTACH_RE.fullmatch(rest) or EXEC_START_RE.fullmatch(rest))


@dataclass
class Plan:
    """What the listener relays after the upgrade, and how to open the host's side."""

    session: str
    tty: bool
    stdin: bool
    container_pk: int
    host_name: str
    user_pk: int
    # attach to a container that is not running yet: open once it runs (`docker run`,
    # `docker start -a` attach before they start it).
    wait_until_running: bool = False
    detach_keys: bytes = b""
    exec_id: str = ""
    cols: int = 0
    rows: int = 0
    opener: object = field(default=None, repr=False)

    @property
    def group(self) -> str:
        """The Channels group the agent's relay sends this session's output to."""
        return proto.group_name(self.session)

    @property
    def media_type(self) -> str:
        """Docker's content type for the upgraded stream: raw for a TTY, else multiplexed."""
        return frames.RAW if self.tty else frames.MULTIPLEXED

    def open(self) -> int:
        """Queue the host's side of the session (in a thread: database and broker)."""
        try:
            return self.opener()
        finally:
            connection.close()


def parse_detach_keys(text: str) -> bytes:
    """Docker's detachKeys syntax (`ctrl-p,ctrl-q`, `ctrl-@`, `a`) as the bytes to watch for."""
    keys = []
    for part in text.split(","):
        part = part.strip()
        if len(part) == 1:
            keys.append(ord(part))
        elif part.lower().startswith("ctrl-") and len(part) == 6:
            char = part[5].lower()
            if char == "@":
                keys.append(0)
            elif "a" <= char <= "z":
                keys.append(ord(char) - ord("a") + 1)
            elif char in "[\\]^_":
                keys.append(ord(char) - 64)
            else:
                raise bad_request(f"invalid detach keys {text!r}: unknown key {part!r}")
        else:
            raise bad_request(f"invalid detach keys {text!r}: unknown key {part!r}")
    return bytes(keys)


def prepare(request, version: str | None, rest: str) -> Plan:
    """Authenticate and decide one hijacked call; raise DockerError to refuse it."""
    try:
        if version is not None:
            router.check_version(version)
        user = authenticate(request)
        call = Call(request=request, user=user, version=version or router.MAX_VERSION)
        match = ATTACH_RE.fullmatch(rest)
        if match:
            return _attach(call, match["ref"])
        return _exec_start(call, EXEC_START_RE.fullmatch(rest)["exec_id"])
    finally:
        connection.close()


def _attach(call, ref) -> Plan:
    """POST /containers/{id}/attach?stream=1&stdin=&stdout=&stderr=&detachKeys=."""
    if call.flag("logs"):
        raise DockerError(501, "Berth does not support attach with logs=1 yet")
    if not call.flag("stream"):
        raise DockerError(501, "Berth does not support attach without stream=1 yet")
    container = find_container(call, ref, "container.attach")
    tty = bool(container.spec.get("tty"))
    stdin = call.flag("stdin") and tty
    keys = parse_detach_keys(call.query.get("detachKeys") or DEFAULT_DETACH_KEYS)
    summary = call.summary(mode="attach", tty=tty)
    # Attaching reaches the container's own process as the user its spec names.
    options = {"user": container.spec.get("user") or None}
    decision = gate.require(
        call.user, "container.attach", container, resource="container", options=options,
        summary=summary,
    )  # fmt: skip
    status = render.status_of(container)
    if status in ("removing", "dead"):
        raise DockerError(409, f"container {ref} is {status}: you cannot attach to it")
    plan = Plan(
        session=secrets.token_hex(16),
        tty=tty,
        stdin=stdin,
        container_pk=container.pk,
        host_name=container.host.name,
        user_pk=call.user.pk,
        # A TTY is the shim's to hand over once the container runs.
        wait_until_running=tty,
        detach_keys=keys if stdin else b"",
    )
    # Without a TTY the container's output is followed from its log, from now on; a stopped
    # one is followed once it is started again (`docker start -a` attaches, then starts).
    params = (
        {"mode": "attach"}
        if tty
        else {
            "mode": "logs",
            "since": datetime.now(UTC).isoformat(),
            "wait_start": status not in ("created", "running", "paused", "restarting"),
        }
    )
    # As for the web terminal: the agent refuses a root process unless the gate allows it.
    root = gate.decide(call.user, "container.exec", container, options={"user": "0"}).allowed
    params |= {"session": plan.session, "root_allowed": root}
    plan.opener = lambda: queue_session(
        call.user, container, decision, summary=summary, params=params
    )
    return plan


def _exec_start(call, exec_id) -> Plan:
    """POST /exec/{id}/start with the upgrade: the exec's streams both ways."""
    body = call.json(required=False)
    if set(body) - {"Detach", "Tty", "ConsoleSize"}:
        raise bad_request("unknown field in the exec start config")
    if body.get("Detach"):
        raise DockerError(501, "Berth does not support detached exec (docker exec -d) yet")
    container, params = execs.exec_of(call, exec_id)
    if render.status_of(container) != "running":
        raise DockerError(409, f"container {container.name} is not running")
    rows, cols = _console_size(body.get("ConsoleSize"))
    params = dict(params)
    params["root_allowed"] = gate.decide(
        call.user, "container.exec", container, options={"user": "0"}
    ).allowed
    summary = call.summary(mode="exec", tty=bool(params.get("tty")), command=params["command"])
    decision = gate.require(call.user, "container.exec", container, options=params, summary=summary)
    tty = bool(params.get("tty"))
    plan = Plan(
        session=secrets.token_hex(16),
        tty=tty,
        stdin=bool(params.get("stdin")),
        container_pk=container.pk,
        host_name=container.host.name,
        user_pk=call.user.pk,
        detach_keys=parse_detach_keys(DEFAULT_DETACH_KEYS) if tty and params.get("stdin") else b"",
        exec_id=exec_id,
        cols=cols,
        rows=rows,
    )
    session_params = {
        "session": plan.session,
        "mode": "exec",
        "command": params["command"],
        "user": params.get("user"),
        "env": params.get("env") or [],
        "workdir": params.get("workdir"),
        "tty": tty,
        "stdin": plan.stdin,
        "cols": cols or 80,
        "rows": rows or 24,
        "root_allowed": params["root_allowed"],
    }
    plan.opener = lambda: queue_session(
        call.user, container, decision, summary=summary, params=session_params
    )
    return plan


def _console_size(value) -> tuple[int, int]:
    if value in (None, []):
        return 0, 0
    if (
        not isinstance(value, list)
        or len(value) != 2
        or not all(isinstance(v, int) and 0 <= v <= 10000 for v in value)
    ):
        raise bad_request("ConsoleSize must be [height, width]")
    return value[0], value[1]


def container_running(pk: int) -> str:
    """The container's Docker status now (the listener polls it before a late attach)."""
    try:
        row = Container.objects.filter(pk=pk).first()
        return render.status_of(row) if row else "removed"
    finally:
        connection.close()
