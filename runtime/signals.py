"""Signal names as Docker accepts them: KILL, SIGKILL, sigterm or a number."""

import signal

from runtime.errors import InvalidSpec


def parse_signal(value) -> int:
    """Return the signal number for `value`, or raise InvalidSpec with a clear message."""
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    else:
        text = str(value).strip().upper()
        if text.isdigit():
            number = int(text)
        else:
            name = text if text.startswith("SIG") else "SIG" + text
            try:
                number = int(signal.Signals[name])
            except KeyError:
                raise InvalidSpec(f"invalid signal {value!r}") from None
    if not 1 <= number <= 64:
        raise InvalidSpec(f"invalid signal {value!r}")
    return number
