"""/containers/{id}/exec, /exec/...: `docker exec` and the resize of a live TTY session."""

import base64
import hashlib

from django.conf import settings
from django.core import signing
from django.core.cache import cache
from django.http import HttpResponse, JsonResponse

from dockerapi import frames, render
from dockerapi.errors import DockerError, bad_request, not_supported
from dockerapi.refs import docker_id, find_container
from operations import dispatch
from rbac import gate

EXEC_SALT = "dockerapi.exec"
EXEC_MAX_AGE = 3600


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
