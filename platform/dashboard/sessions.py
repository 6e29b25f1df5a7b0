"""Opening a terminal session: decide and audit through the gate, record an Operation, send it."""

import re
import shlex

from config.errors import Conflict, InvalidRequest
from containers.models import Container
from dashboard import terminal_protocol as proto
from operations.sessions import queue_session
from rbac import gate

# The REST exec's user syntax (containers.api.serializers.ExecSerializer).
# What a person at the web terminal may open (the Docker API also follows logs).
TERMINAL_MODES = ("exec", "attach")
USER_RE = re.compile(r"^[a-zA-Z0-9_.-]+(:[a-zA-Z0-9_.-]+)?$")


def parse_command(text: str) -> list[str]:
    """The exec command as argv (split like a shell); refuses an empty or unparsable one."""
    try:
        argv = shlex.split(text or "")
    except ValueError as err:
        raise InvalidRequest(f"cannot split the command: {err}") from None
    if not argv:
        raise InvalidRequest("the terminal needs a command")
    return argv


def open_session(
    user,
    container_id,
    *,
    session: str,
    mode: str,
    command: str,
    cols: int,
    rows: int,
    exec_user: str = "",
) -> int:
    """Check, audit and queue one terminal session; returns the Operation id.

    The caller listens on the session's group before calling, so it cannot miss the agent's
    first message.
    Raises NotVisible (another team's or a missing container), AccessDenied (audited),
    InvalidRequest or Conflict (not running, no TTY), Unavailable (Redis down).
    """
    if mode not in TERMINAL_MODES:
        raise InvalidRequest(f"mode must be one of {', '.join(TERMINAL_MODES)}")
    container = (
        gate.restrict(Container.objects.select_related("host", "team"), user, "container.view")
        .filter(pk=container_id)
        .first()
    )
    action = f"container.{mode}"
    if container is None:
        gate.not_visible(user, action, "container", container_id)
    cols, rows = proto.clamp_size(cols, rows)
    argv = parse_command(command) if mode == "exec" else []
    proto.group_name(session)  # refuses a malformed session id
    exec_user = (exec_user or "").strip() or None
    if exec_user is not None and not USER_RE.match(exec_user):
        raise InvalidRequest(f"invalid user {exec_user!r} (use name, uid or uid:gid)")
    summary = {"via": "dashboard terminal", "mode": mode, "command": argv, "user": exec_user}
    # The same options as the REST exec, so exec as root into another team's container needs
    # container.exec_root here too.
    # Attach reaches the container's own process, as the user its spec names (the image's,
    # root by default, when it names none).
    options = (
        {"command": argv, "user": exec_user}
        if mode == "exec"
        else {"user": container.spec.get("user") or None}
    )
    decision = gate.require(
        user, action, container, resource="container", options=options, summary=summary
    )
    if mode == "attach" and not container.spec.get("tty"):
        raise Conflict(f"container {container.name} has no TTY to attach to; use exec")
    if container.observed_state != Container.Observed.RUNNING:
        raise Conflict(f"container {container.name} is {container.observed_state}, not running")
    params = {
        "session": session,
        "mode": mode,
        "command": argv,
        "user": exec_user,
        "cols": cols,
        "rows": rows,
        # The agent resolves the real uid (names, the container's default user) and
        # refuses root unless the gate allows it here.
        "root_allowed": gate.decide(
            user, "container.exec", container, options={"user": "0"}
        ).allowed,
    }
    return queue_session(user, container, decision, summary=summary, params=params)
