"""/containers/...: create, inspect, the lifecycle verbs, wait and logs, through the gate and the REST API's services."""

import asyncio
import json
import time
from datetime import UTC, datetime

from asgiref.sync import sync_to_async
from django.db import connection
from django.http import HttpResponse, JsonResponse, StreamingHttpResponse
from django.utils import timezone

from config.ids import is_id
from containers import maxima, services
from containers.api.spec import parse_spec
from containers.models import Container
from dockerapi import frames, log_follow, render, where
from dockerapi.errors import DockerError, bad_request, not_supported
from dockerapi.images_common import failure
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


def finish(operation, seconds: float | None = None):
    """Wait for the Operation and return it fresh; a failure on the host answers 409 with its
    message (or 404 for a missing image)."""
    seconds = WAIT_SECONDS if seconds is None else seconds
    if seconds <= 0:
        return operation
    operation = dispatch.wait_for(operation, seconds)
    if operation.state == operation.State.FAILED:
        raise failure(operation)
    return operation


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
    op = finish(op)
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
    finish(op, wait)
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
    finish(op)
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
