"""Read a container's JSON-lines log: tail, since, follow (stdout and stderr kept apart)."""

from __future__ import annotations

import contextlib
import json
import time
from collections import deque
from datetime import UTC, datetime

from runtime.errors import InvalidSpec


def parse_since(since) -> str | None:
    """Accept an ISO time, a Unix timestamp or a relative duration (10s, 5m, 2h)."""
    if since is None or since == "":
        return None
    if isinstance(since, int | float):
        ts = float(since)
    else:
        text = str(since).strip()
        units = {"s": 1, "m": 60, "h": 3600}
        try:
            if text[-1:] in units and text[:-1].replace(".", "", 1).isdigit():
                ts = time.time() - float(text[:-1]) * units[text[-1]]
            elif text.replace(".", "", 1).isdigit():
                ts = float(text)
            else:
                dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
                ts = dt.replace(tzinfo=dt.tzinfo or UTC).timestamp()
        except ValueError:
            raise InvalidSpec(f"invalid value for since: {since!r}") from None
    ns = int(ts * 1e9)
    return (
        time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ns // 1_000_000_000))
        + f".{ns % 1_000_000_000:09d}Z"
    )


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
            if not _running(rt, cid):
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


def _running(rt, cid: str) -> bool:
    try:
        return rt.state(cid)["status"] in ("running", "paused", "created", "restarting")
    except Exception:
        return False
