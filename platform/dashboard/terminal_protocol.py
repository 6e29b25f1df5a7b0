"""Message names and group names shared by the terminal consumer (web) and relay (agent).

No Django and no runtime imports: both sides import it. Messages go through the Channels
layer (Redis); `data` is raw bytes (channels_redis packs with msgpack).

web -> agent (to the agent's own channel):  term.input {data}, term.resize {cols, rows}, term.close
agent -> web (to the session group):        term.ready {channel}, term.output {data},
                                            term.exit {code, message}
"""

import re

TASK_NAME = "agent.relay_terminal"
OPERATION_KIND = "container.terminal"
MODES = ("exec", "attach")
READY, OUTPUT, EXIT = "term.ready", "term.output", "term.exit"
INPUT, RESIZE, CLOSE = "term.input", "term.resize", "term.close"
MAX_INPUT = 64 * 1024
_SESSION_RE = re.compile(r"^[0-9a-f]{32}$")


def group_name(session: str) -> str:
    """The Channels group of one terminal session (the consumer listens on it)."""
    if not _SESSION_RE.match(session or ""):
        raise ValueError("invalid terminal session id")
    return f"berth-term-{session}"


def clamp_size(cols, rows) -> tuple[int, int]:
    """A terminal size the kernel accepts and no client can abuse."""
    try:
        cols, rows = int(cols), int(rows)
    except (TypeError, ValueError):
        return 80, 24
    return max(2, min(cols, 1000)), max(2, min(rows, 500))
