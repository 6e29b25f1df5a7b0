"""Read a container's JSON-lines log: tail, since, follow (stdout and stderr kept apart)."""

from __future__ import annotations

import contextlib
import json
import math
import re
import time
from collections import deque
from datetime import UTC, datetime, timedelta, timezone

from runtime.errors import InvalidSpec, NotFound

# Failed looks in a row (0.1 s apart) after which a follow ends as if the container stopped.
MAX_FAILED_LOOKS = 50

_ISO_PARTS = re.compile(r"(.+?)(?:\.(\d+))?(Z|[+-]\d\d:?\d\d)?")


def parse_since(since) -> str | None:
    """Accept an ISO time, a Unix timestamp or a relative duration (10s, 5m, 2h); returns the
    log's own time format. An ISO time keeps its nanoseconds exactly: a float of today's
    seconds holds only about a quarter of a microsecond, so an entry's own timestamp given
    back as `since` could come out after it and leave that entry out."""
    if since is None or since == "":
        return None
    if isinstance(since, int | float):
        return _log_time(float(since))
    text = str(since).strip()
    units = {"s": 1, "m": 60, "h": 3600}
    try:
        if text[-1:] in units and text[:-1].replace(".", "", 1).isdigit():
            return _log_time(time.time() - float(text[:-1]) * units[text[-1]])
        if text.replace(".", "", 1).isdigit():
            return _log_time(float(text))
        parts = _ISO_PARTS.fullmatch(text)
        if parts is None:
            raise ValueError(text)
        whole, fraction, zone = parts.groups()
        dt = datetime.fromisoformat(whole)
        if zone not in (None, "Z"):
            sign = -1 if zone[0] == "-" else 1
            hours, minutes = int(zone[1:3]), int(zone[-2:])
            dt = dt.replace(tzinfo=timezone(sign * timedelta(hours=hours, minutes=minutes)))
        elif dt.tzinfo is None:
            dt = dt.replace(tzinfo=UTC)
    except ValueError:
        raise InvalidSpec(f"invalid value for since: {since!r}") from None
    seconds = int(dt.timestamp())
    nanoseconds = int((fraction or "0")[:9].ljust(9, "0"))
    return _format(seconds, nanoseconds)


def _log_time(ts: float) -> str:
    seconds = math.floor(ts)
    nanoseconds = min(999_999_999, round((ts - seconds) * 1e9))
    return _format(seconds, nanoseconds)


def _format(seconds: int, nanoseconds: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{nanoseconds:09d}Z"


def _decode(line: bytes):
    try:
        # The C shim writes bytes above 0x7f as they came: decode them losslessly.
        entry = json.loads(line.decode("utf-8", "surrogateescape"))
    except ValueError:
        return None
    return entry["stream"], entry["time"], entry["log"].encode("utf-8", "surrogateescape")


def read_logs(rt, cid: str, follow: bool = False, tail=None, since=None, stop=None):
    """Yield (stream, iso_ts, bytes); with follow, keep going until the container stops (or
    until `stop()` says so: a follower whose reader left must not poll for ever)."""
    if tail is not None and tail != "all":
        try:
            tail = int(tail)
        except (TypeError, ValueError):
            raise InvalidSpec(f"invalid tail value {tail!r}: use a number or 'all'") from None
        if tail < 0:
            raise InvalidSpec("tail must not be negative")
    else:
        tail = None
    since_ts = parse_since(since)
    path = rt.store.paths(cid).log_file
    return _iterate(rt, cid, path, follow, tail, since_ts, stop)


def _iterate(rt, cid, path, follow, tail, since_ts, stop=None):
    try:
        f = open(path, "rb")  # noqa: SIM115 (closed in the finally below)
    except FileNotFoundError:
        if not follow:
            return
        f = None
    try:
        if f is not None:
            lines = f.readlines()
            pending = b""
            if lines and not lines[-1].endswith(b"\n"):
                pending = lines.pop()  # written half: finish it on the next read
            entries = [
                e for e in map(_decode, lines) if e and (since_ts is None or e[1] >= since_ts)
            ]
            if tail is not None:
                entries = list(deque(entries, maxlen=tail)) if tail else []
            yield from entries
        else:
            pending = b""
        failed = 0  # looks at the container's status in a row that failed
        while follow:
            if f is None:
                with contextlib.suppress(FileNotFoundError):
                    f = open(path, "rb")  # noqa: SIM115 (closed in the finally below)
            chunk = f.read() if f is not None else b""
            if chunk:
                pending += chunk
                *complete, pending = pending.split(b"\n")
                for line in complete:
                    entry = _decode(line)
                    if entry:
                        yield entry
                continue
            running = _running(rt, cid)
            failed = failed + 1 if running is None else 0
            if running is False or failed > MAX_FAILED_LOOKS:
                chunk = f.read() if f is not None else b""
                if not chunk:
                    return
                pending += chunk
                continue
            if stop is not None and stop():
                return
            time.sleep(0.1)
    finally:
        if f is not None:
            f.close()


def _running(rt, cid: str) -> bool | None:
    """Whether the container may still write to its log; None when the look failed.

    A look can fail for a moment while the container changes state (its start or exit racing
    the files and cgroup read here): that is not its end, or a `docker start -a` made just
    before the start would end with nothing. Only its removal is.
    """
    try:
        return rt.state(cid)["status"] in ("running", "paused", "created", "restarting")
    except NotFound:
        return False
    except Exception:  # noqa: BLE001 (any failed look; the caller gives up after a few)
        return None
