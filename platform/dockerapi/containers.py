"""/containers/... and /exec/...: every call through the gate and the REST API's services."""

import asyncio
import base64
import hashlib
import json
import time
from datetime import UTC, datetime
from types import SimpleNamespace

from asgiref.sync import sync_to_async
from django.conf import settings
from django.core import signing
from django.core.cache import cache
from django.db import connection
from django.db.models import BigIntegerField, Func, TextField
from django.db.models.fields.json import KT
from django.db.models.functions import Cast
from django.http import HttpResponse, JsonResponse, StreamingHttpResponse
from django.utils import timezone

from config.ids import is_id
from containers import maxima, services
from containers.api.spec import parse_spec
from containers.models import Container
from dockerapi import frames, log_follow, render, where
from dockerapi.errors import DockerError, bad_request, not_supported
from dockerapi.refs import docker_id, find_container
from dockerapi.translate import to_spec
from operations import dispatch
from operations.models import Operation
from rbac import gate
from rbac.grants import in_scope

# How long a call waits for the host to carry the change out (Docker's calls are synchronous).
# Still pending after that: the call answers as done (the Operation finishes later).
WAIT_SECONDS = 60.0
WAIT_POLL_SECONDS = 0.5
WAIT_MAX_SECONDS = 600  # POST /containers/{id}/wait gives up after this (504)
EXEC_SALT = "dockerapi.exec"
EXEC_MAX_AGE = 3600
_LIST_FILTERS = {"label", "name", "status", "id"}


def _finish(operation, seconds: float | None = None):
    """Wait for the Operation and return it fresh; a failure on the host answers 409 with its
    message (or 404 for a missing image)."""
    seconds = WAIT_SECONDS if seconds is None else seconds
    if seconds <= 0:
        return operation
    operation = dispatch.wait_for(operation, seconds)
    if operation.state == operation.State.FAILED:
        error = operation.error or "the host could not do it"
        lowered = error.lower()
        if "image" in lowered and ("not found" in lowered or "no such" in lowered):
            raise DockerError(404, f"No such image: {error}")
        raise DockerError(409, error)
    return operation


# The columns render.summary and _matches read (one query for the whole list). The JSON ones
# come as text (only the four keys of the spec a summary shows, extracted by the database)
# and each distinct text is parsed once per list: most rows share their command, network,
# mounts and labels, and parsing every row's whole spec was a third of a 500-row `docker ps`.
# The creation time comes as Unix seconds (what the summary shows) rather than as a datetime.
_SUMMARY_FIELDS = (
    "id", "name", "image", "runtime_id", "observed_state", "exit_code",
    "health__status", "health__failing_streak",
)  # fmt: skip
_SPEC_KEYS = ("command", "entrypoint", "network", "mounts")


class _UnixSeconds(Func):
    """A datetime column as whole seconds since the epoch (SQLite and PostgreSQL)."""

    output_field = BigIntegerField()

    def as_sqlite(self, compiler, connection, **extra):
        # '%%%%s': the template's formatting makes it %%s, which the backend's parameter
        # substitution then turns into strftime's own %s.
        template = "CAST(strftime('%%%%s', %(expressions)s) AS INTEGER)"
        return self.as_sql(compiler, connection, template=template, **extra)

    def as_postgresql(self, compiler, connection, **extra):
        template = "CAST(FLOOR(EXTRACT(EPOCH FROM %(expressions)s)) AS BIGINT)"
        return self.as_sql(compiler, connection, template=template, **extra)


# In this order after _SUMMARY_FIELDS (values_list takes the expressions by position).
_SUMMARY_TEXT = {
    **{f"spec_{key}": KT(f"spec__{key}") for key in _SPEC_KEYS},
    "labels_text": Cast("labels", TextField()),
    "network_info_text": Cast("network_info", TextField()),
    "created": _UnixSeconds("created_at"),
}


def _summary_row(row: tuple, parse) -> SimpleNamespace:
    """A list row (_SUMMARY_FIELDS, then _SUMMARY_TEXT) as the attributes render.summary reads."""
    pk, name, image, runtime_id, observed, exit_code, health, streak, *texts, created = row
    command, entrypoint, network, mounts, labels, network_info = map(parse, texts)
    return SimpleNamespace(
        pk=pk, id=pk, name=name, image=image, runtime_id=runtime_id, observed_state=observed,
        exit_code=exit_code, created=created, labels=labels, network_info=network_info,
        health=None if health is None else SimpleNamespace(status=health, failing_streak=streak),
        spec={"command": command, "entrypoint": entrypoint, "network": network, "mounts": mounts},
    )  # fmt: skip


def _parser():
    """json.loads with a memo of the texts seen (for one list; its results are only read)."""
    seen = {}

    def parse(text):
        if text is None:
            return None
        if text not in seen:
            seen[text] = json.loads(text)
        return seen[text]

    return parse


# Rows whose Docker status is running or paused (render.STATUS), what `docker ps` lists.
_SHOWN_BY_DEFAULT = [k for k, v in render.STATUS.items() if v in ("running", "paused")]


def list_(call):
    """GET /containers/json?all=&filters=&limit=."""
    gate.authorize(call.user, "container.view", resource="container", summary=call.summary())
    rows = gate.restrict(
        Container.objects.exclude(observed_state=Container.Observed.REMOVED),
        call.user,
        "container.view",
    ).order_by("-created_at", "-id")
    filters = call.filters(_LIST_FILTERS)
    wanted_all = call.flag("all") or "status" in filters
    if not wanted_all:
        rows = rows.filter(observed_state__in=_SHOWN_BY_DEFAULT)
    found = []
    parse = _parser()
    # Only the columns a summary shows, as plain values with the health row's in the same
    # query: building 500 model instances (with their team and host) was most of `docker ps`.
    for row in rows.values_list(*_SUMMARY_FIELDS, *_SUMMARY_TEXT.values()):
        container = _summary_row(row, parse)
        status = render.status_of(container)
        if not wanted_all and status not in ("running", "paused"):
            continue
        if not _matches(container, status, filters):
            continue
        found.append(render.summary(container, created=container.created))
    limit = call.integer("limit", -1)
    if limit and limit > 0:
        found = found[:limit]
    # Compact, as dockerd's Go encoder writes it (a tenth fewer bytes for the CLI to read).
    return JsonResponse(found, safe=False, json_dumps_params={"separators": (",", ":")})


def _matches(container, status: str, filters: dict) -> bool:
    for value in filters.get("label", []):
        key, sep, want = value.partition("=")
        if key not in (container.labels or {}) or (sep and container.labels[key] != want):
            return False
    names = filters.get("name")
    if names and not any(n.lstrip("/") in container.name for n in names):
        return False
    statuses = filters.get("status")
    if statuses and status not in statuses:
        return False
    ids = filters.get("id")
    return not ids or any(docker_id(container).startswith(i) for i in ids)


def create(call):
    """POST /containers/create?name=: the body becomes a Berth spec; the gate decides on it."""
    summary = call.summary()
    # Refused (and audited) before the body is read, as POST /api/v1/containers/ does.
    gate.require(call.user, "container.create", resource="container", summary=summary)
    if call.query.get("platform") not in (None, "", "linux", "linux/amd64", "linux/arm64"):
        raise not_supported(f"the platform {call.query['platform']!r}")
    body = call.json()
    spec = parse_spec(to_spec(body, name=call.query.get("name") or None))
    team = where.team_for(call.user, spec.get("labels"))
    host = where.host_for(call.user, team, spec.get("labels"), spec)
    container, op = services.do_create_container(
        team=team,
        host=host,
        spec=spec,
        start=False,
        acting_user=call.user,
        summary=summary | {"spec": spec},
    )
    op = _finish(op)
    # The Id, once the host made it: the operation's result names it (the agent stored the
    # same id in the row before it finished the operation); read from the row otherwise.
    made = (op.result or {}).get("id") if op.state == Operation.State.SUCCEEDED else None
    if isinstance(made, str) and made:
        container.runtime_id = made
    else:
        container.refresh_from_db(fields=["runtime_id"])
    return JsonResponse({"Id": docker_id(container), "Warnings": []}, status=201)


def inspect(call, ref):
    """GET /containers/{id}/json."""
    container = find_container(call, ref, "container.view")
    gate.authorize(call.user, "container.view", container, summary=call.summary())
    return JsonResponse(render.inspect(container))


def _verb(call, ref, verb, params=None, *, already=None, wait=None):
    container = find_container(call, ref, services.ACTION_OF[verb])
    if verb in ("stop", "restart") and params and params.get("timeout") is not None:
        # Grace periods are capped by policy, as on the REST API (containers/maxima.py).
        scope = in_scope(call.user, container.team_id, container.host_id)
        problem = maxima.stop_timeout_problem(params["timeout"], scope.max_limits, what="t")
        if problem:
            raise bad_request(problem)
    if already and render.status_of(container) in already:
        # Docker answers 304 when there is nothing to do; the decision is still taken and kept.
        gate.authorize(call.user, services.ACTION_OF[verb], container, summary=call.summary())
        return HttpResponse(status=304)
    op = services.do_container_verb(
        container, verb, acting_user=call.user, params=params or {}, summary=call.summary()
    )
    _finish(op, wait)
    return HttpResponse(status=204)


def _stop_params(call, *, signal_default=None) -> dict:
    params = {}
    timeout = call.integer("t")
    if timeout is not None:
        if not 0 <= timeout <= 3600:
            raise bad_request("t must be between 0 and 3600 seconds")
        params["timeout"] = timeout
    signal = call.query.get("signal") or signal_default
    if signal:
        params["signal"] = signal
    return params


def start(call, ref):
    """POST /containers/{id}/start (304 when already running)."""
    if call.query.get("detachKeys"):
        raise not_supported("detachKeys")
    return _verb(call, ref, "start", already=("running", "paused"))


def stop(call, ref):
    """POST /containers/{id}/stop?t=&signal= (304 when not running)."""
    params = _stop_params(call)
    wait = WAIT_SECONDS + params.get("timeout", 10)
    return _verb(call, ref, "stop", params, already=("exited", "created", "dead"), wait=wait)


def restart(call, ref):
    """POST /containers/{id}/restart?t=&signal=."""
    params = _stop_params(call)
    return _verb(call, ref, "restart", params, wait=WAIT_SECONDS + params.get("timeout", 10))


def kill(call, ref):
    """POST /containers/{id}/kill?signal= (409 when not running, as Docker)."""
    container = find_container(call, ref, "container.kill")
    if render.status_of(container) not in ("running", "paused"):
        raise DockerError(409, f"container {ref} is not running")
    return _verb(call, ref, "kill", _stop_params(call, signal_default="SIGKILL"))


def pause(call, ref):
    """POST /containers/{id}/pause."""
    return _verb(call, ref, "pause")


def unpause(call, ref):
    """POST /containers/{id}/unpause."""
    return _verb(call, ref, "unpause")


def remove(call, ref):
    """DELETE /containers/{id}?force=&v= (409 for a running one without force)."""
    force = call.flag("force")
    if call.flag("link"):
        raise not_supported("removing links")
    container = find_container(call, ref, "container.delete")
    if not force and render.status_of(container) in ("running", "paused"):
        gate.require(call.user, "container.delete", container, summary=call.summary())
        raise DockerError(
            409,
            f"cannot remove container /{container.name}: container is running: stop the "
            "container before removing or force remove",
        )
    # `v` (remove anonymous volumes): Berth makes none, so there is nothing more to remove.
    op = services.do_container_verb(
        container,
        "remove",
        acting_user=call.user,
        params={"force": force},
        summary=call.summary(),
    )
    _finish(op)
    return HttpResponse(status=204)


def wait(call, ref):
    """POST /containers/{id}/wait?condition=: 200 and its headers at once (the docker CLI waits
    for them before it starts the container), the exit status when the condition is met."""
    condition = call.query.get("condition") or "not-running"
    if condition not in ("not-running", "next-exit", "removed"):
        raise bad_request(f"invalid condition {condition!r}")
    container = find_container(call, ref, "container.view")
    gate.authorize(call.user, "container.view", container, summary=call.summary())
    watch = _Watch(container.pk, condition, container)

    async def body():
        yield b"\n"  # JSON allows leading whitespace; this sends the headers now
        deadline = time.monotonic() + WAIT_MAX_SECONDS
        while True:
            # One short database look per poll: a client that hangs up cancels the sleep.
            result = await sync_to_async(watch.check, thread_sensitive=False)()
            if result is not None:
                yield json.dumps(result).encode()
                return
            if time.monotonic() > deadline:
                yield json.dumps(
                    {"StatusCode": -1, "Error": {"Message": "Berth stopped waiting"}}
                ).encode()
                return
            await asyncio.sleep(WAIT_POLL_SECONDS)

    return StreamingHttpResponse(body(), content_type="application/json")


class _Watch:
    """Whether a container met a wait condition (in a worker thread with its own connection)."""

    def __init__(self, pk: int, condition: str, container):
        self.pk, self.condition = pk, condition
        status = render.status_of(container)
        self.seen_running = status in ("running", "paused")
        # A run that starts and exits between two polls is still seen: it leaves a new pid,
        # or a container that was only created now has an exit.
        self.first_pid = container.pid
        self.never_started = status == "created"
        self.began = timezone.now()

    def _started_since(self) -> bool:
        """Whether a start of this container finished after the wait began (`docker start -a`
        of a container that then exits before any look at its row sees it running)."""
        return Operation.objects.filter(
            target_type="container",
            target_id=str(self.pk),
            kind__in=("container.start", "container.restart"),
            state=Operation.State.SUCCEEDED,
            finished_at__gte=self.began,
        ).exists()

    def check(self):
        try:
            container = Container.objects.filter(pk=self.pk).first()
            if container is not None and not self.seen_running and self._started_since():
                self.seen_running = True
        finally:
            connection.close()
        if container is None or container.observed_state == Container.Observed.REMOVED:
            return {"StatusCode": (container.exit_code or 0) if container else 0, "Error": None}
        status = render.status_of(container)
        running = status in ("running", "paused")
        starting = status == "created" and container.desired_state == Container.Desired.RUNNING
        ran_since = container.pid != self.first_pid or (self.never_started and status == "exited")
        self.seen_running = self.seen_running or running or ran_since
        if self.condition == "removed":
            done = False
        elif self.condition == "next-exit":
            done = self.seen_running and not running and not starting
        else:
            done = not running and not starting
        return {"StatusCode": container.exit_code or 0, "Error": None} if done else None


def _since(call):
    raw = call.query.get("since")
    if raw in (None, "", "0"):
        return None
    try:
        return datetime.fromtimestamp(float(raw), tz=UTC).isoformat()
    except (ValueError, OverflowError):
        raise bad_request(f"invalid since {raw!r} (a Unix timestamp)") from None


def logs(call, ref):
    """GET /containers/{id}/logs: stdout/stderr, multiplexed unless the container has a TTY;
    with follow, streamed as the container writes them (dockerapi/log_follow.py)."""
    if call.query.get("until"):
        raise not_supported("logs --until")
    container = find_container(call, ref, "container.logs")
    stdout, stderr = call.flag("stdout"), call.flag("stderr")
    if not (stdout or stderr):
        raise bad_request("you must choose at least one stream")
    tail = call.query.get("tail") or "all"
    if tail != "all" and not is_id(tail) and tail != "0":
        raise bad_request(f"invalid tail {tail!r}")
    params = {
        "tail": None if tail == "all" else min(int(tail), 10000),
        "since": _since(call),
        "timestamps": call.flag("timestamps"),
    }
    tty = bool(container.spec.get("tty"))
    if call.flag("follow"):
        summary = call.summary(follow=True)
        decision = gate.require(call.user, "container.logs", container, summary=summary)
        body = log_follow.stream(
            call,
            container,
            decision,
            params={k: v for k, v in params.items() if v is not None},
            tty=tty,
            streams={name for name, on in (("stdout", stdout), ("stderr", stderr)) if on},
            summary=summary,
        )
        return StreamingHttpResponse(body, content_type=frames.RAW if tty else frames.MULTIPLEXED)
    decision = gate.authorize(call.user, "container.logs", container, summary=call.summary())
    claims = dispatch.decision_claims(decision, object_id=container.pk)
    result = dispatch.call_host(
        container.host, "agent.container_logs", [container.pk, params], decision=claims
    )
    chunks = []
    for stream, stamp, text in result.get("lines") or []:
        if (stream == "stdout" and not stdout) or (stream == "stderr" and not stderr):
            continue
        payload = (f"{stamp} " if params["timestamps"] and stamp else "") + text
        data = payload.encode()
        chunks.append(
            data if tty else frames.frame("stderr" if stream == "stderr" else "stdout", data)
        )
    return HttpResponse(b"".join(chunks), content_type=frames.RAW if tty else frames.MULTIPLEXED)


_EXEC_FIELDS = {
    "AttachStdin",
    "AttachStdout",
    "AttachStderr",
    "DetachKeys",
    "Tty",
    "Env",
    "Cmd",
    "Privileged",
    "User",
    "WorkingDir",
    "ConsoleSize",
    "Detach",
    "Container",
}


def exec_create(call, ref):
    """POST /containers/{id}/exec: decided now and again at start; the Id carries the request
    (signed by the server, bound to the caller), so nothing is stored."""
    body = call.json()
    unknown = sorted(set(body) - _EXEC_FIELDS)
    if unknown:
        raise bad_request(f"unknown field {unknown[0]!r} in the exec config")
    if body.get("Privileged"):
        raise not_supported("privileged exec")
    if body.get("DetachKeys"):
        raise not_supported("detachKeys")
    if body.get("Detach"):
        raise not_supported("detached exec (docker exec -d)")
    cmd = body.get("Cmd")
    if not isinstance(cmd, list) or not cmd or not all(isinstance(c, str) for c in cmd):
        raise bad_request("Cmd must be a non-empty list of strings")
    env = body.get("Env") or []
    if not isinstance(env, list) or not all(isinstance(e, str) and "=" in e for e in env):
        raise bad_request("Env must be a list of KEY=value strings")
    container = find_container(call, ref, "container.exec")
    if render.status_of(container) != "running":
        raise DockerError(409, f"container {docker_id(container)} is not running")
    params = {
        "command": cmd,
        "user": body.get("User") or None,
        "env": env,
        "workdir": body.get("WorkingDir") or None,
        "timeout": 60,
        # A TTY and input need the upgraded connection of the Docker API listener (hijack.py).
        "tty": bool(body.get("Tty")),
        "stdin": bool(body.get("AttachStdin")),
    }
    gate.require(call.user, "container.exec", container, options=params, summary=call.summary())
    exec_id = signing.dumps(
        {"c": container.pk, "u": call.user.pk, "p": params}, salt=EXEC_SALT, compress=True
    )
    return JsonResponse({"Id": exec_id}, status=201)


def exec_of(call, exec_id):
    try:
        data = signing.loads(exec_id, salt=EXEC_SALT, max_age=EXEC_MAX_AGE)
    except signing.BadSignature:
        raise DockerError(404, f"No such exec instance: {exec_id[:40]}") from None
    if data.get("u") != call.user.pk:
        raise DockerError(404, f"No such exec instance: {exec_id[:40]}")
    container = find_container(call, f"berth-{data['c']}", "container.exec")
    return container, data["p"]


def exec_start(call, exec_id):
    """POST /exec/{id}/start without the upgrade: runs to completion and answers the
    multiplexed output as the response body. With `Upgrade: tcp` the Docker API listener
    (dockerapi/listener.py) takes the call instead and relays the streams (hijack.py)."""
    body = call.json(required=False)
    if set(body) - {"Detach", "Tty", "ConsoleSize"}:
        raise bad_request("unknown field in the exec start config")
    if body.get("Detach"):
        raise not_supported("detached exec (docker exec -d)")
    container, params = exec_of(call, exec_id)
    if body.get("Tty") or params.get("tty") or params.get("stdin"):
        raise DockerError(
            400,
            "an exec with a TTY or input needs the upgraded connection of Berth's Docker API "
            "listener (DOCKER_HOST=tcp://127.0.0.1:2375, `manage.py serve_docker_api`)",
        )
    params = {k: v for k, v in params.items() if k not in ("tty", "stdin")}
    params["root_allowed"] = gate.decide(
        call.user, "container.exec", container, options={"user": "0"}
    ).allowed
    decision = gate.authorize(
        call.user, "container.exec", container, options=params, summary=call.summary()
    )
    claims = dispatch.decision_claims(
        decision, object_id=container.pk, root_allowed=params["root_allowed"]
    )
    result = dispatch.call_host(
        container.host,
        "agent.container_exec",
        [container.pk, params],
        timeout=params["timeout"] + settings.BERTH_EXEC_MARGIN_SECONDS,
        decision=claims,
    )
    output = (
        base64.b64decode(result["output_base64"])
        if result.get("output_base64")
        else (result.get("output") or "").encode()
    )
    answer = HttpResponse(
        frames.frame("stdout", output) if output else b"", content_type=frames.MULTIPLEXED
    )
    answer["X-Berth-Exit-Code"] = str(result.get("exit_code"))
    cache.set(exit_key(exec_id), result.get("exit_code"), EXEC_MAX_AGE)
    return answer


def exit_key(exec_id: str) -> str:
    return "dockerapi-exec:" + hashlib.sha256(exec_id.encode()).hexdigest()


def exec_inspect(call, exec_id):
    """GET /exec/{id}/json: what the exec ran and, once started here, its exit code (kept in
    this web process's cache for an hour; also in the start answer's X-Berth-Exit-Code)."""
    container, params = exec_of(call, exec_id)
    gate.authorize(call.user, "container.view", container, summary=call.summary())
    return JsonResponse(
        {
            "ID": exec_id,
            "Running": False,
            "ExitCode": cache.get(exit_key(exec_id)),
            "ProcessConfig": {
                "entrypoint": params["command"][0],
                "arguments": params["command"][1:],
                "user": params["user"] or "",
            },
            "OpenStdin": bool(params.get("stdin")),
            "OpenStderr": True,
            "OpenStdout": True,
            "ContainerID": docker_id(container),
        }
    )


def _size(call) -> tuple[int, int]:
    rows, cols = call.integer("h"), call.integer("w")
    if rows is None or cols is None or not (0 < rows <= 10000 and 0 < cols <= 10000):
        raise bad_request("resize needs h and w, positive numbers of rows and columns")
    return cols, rows


def resize(call, ref):
    """POST /containers/{id}/resize?h=&w=: the caller's attach session to a TTY container
    (relayed by this Docker API listener) gets the new size; its program sees SIGWINCH."""
    from dockerapi import hijack_relay

    cols, rows = _size(call)
    container = find_container(call, ref, "container.attach")
    gate.authorize(call.user, "container.attach", container, summary=call.summary())
    if not container.spec.get("tty"):
        raise DockerError(400, f"container {docker_id(container)} has no TTY to resize")
    if not hijack_relay.resize_live(
        hijack_relay.attach_key(container.pk, call.user.pk), cols, rows
    ):
        raise DockerError(409, f"no attach session of yours to container {ref} here to resize")
    return HttpResponse(status=200)


def exec_resize(call, exec_id):
    """POST /exec/{id}/resize?h=&w=: the exec's live TTY session gets the new size."""
    from dockerapi import hijack_relay

    cols, rows = _size(call)
    container, params = exec_of(call, exec_id)
    gate.authorize(call.user, "container.exec", container, summary=call.summary())
    if not params.get("tty"):
        raise DockerError(400, "this exec has no TTY to resize")
    if not hijack_relay.resize_live(hijack_relay.exec_key(exec_id), cols, rows):
        raise DockerError(409, f"exec {exec_id[:12]} is not running here")
    return HttpResponse(status=201)
