"""Message names and group names shared by the terminal consumer (web) and relay (agent).

No Django and no runtime imports: both sides import it. Messages go through the Channels
layer (Redis); `data` is raw bytes (channels_redis packs with msgpack).

web -> agent (to the agent's own channel):  term.input {data}, term.resize {cols, rows},
                                            term.eof (end of input), term.close,
                                            each with `seq` and `envelope` (signed, see signed_args)
agent -> web (to the session group):        term.ready {channel}, term.output {data, stream},
                                            term.exit {code, message}

Modes: exec (a program on a PTY, or on pipes when params.tty is false), attach (a TTY
container's own terminal), logs (the container's log followed; the Docker API's attach to a
container without a TTY and `docker logs -f`).
"""

import hashlib
import re

TASK_NAME = "agent.relay_terminal"
OPERATION_KIND = "container.terminal"
MODES = ("exec", "attach", "logs")
READY, OUTPUT, EXIT = "term.ready", "term.output", "term.exit"
INPUT, RESIZE, CLOSE, EOF = "term.input", "term.resize", "term.close", "term.eof"
MAX_INPUT = 64 * 1024
COMMAND_TTL = 60.0  # seconds a signed terminal command stays valid
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


def signed_args(session: str, seq, message: dict) -> list:
    """What the web signs of one command to the agent: the session, its place in the
    sequence, and the command's content (input bytes by digest). Redis cannot change a
    keystroke, inject one, or replay one into this or another session."""
    data = message.get("data")
    digest = hashlib.sha256(bytes(data)).hexdigest() if data is not None else ""
    return [session, seq, message.get("type"), digest, message.get("cols"), message.get("rows")]
