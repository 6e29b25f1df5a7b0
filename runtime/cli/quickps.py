"""`ps` from the index's kept list views, with nothing imported but sys, time and three C
modules (posix, _json, _sqlite3) (issue 19).

A Python start is most of what `ps` costs: `json` alone imports `re` (and through it enum and
functools), `sqlite3` imports `datetime`, `os` imports `_collections_abc` (1 ms): posix
is os's built-in half. This module reads the index's views through
`_sqlite3` and decodes them with `_json`'s scanner (the C parts those packages wrap), checks
each view as runtime/container/listing.py does (row clean, key = the ctimes of the
container's two directories, the programs of its processes unchanged), and prints the table.
When any container has no valid view (or the index is missing, busy or damaged) it answers
None and `ps` runs its full path (runtime/cli/ps.py), which observes, keeps the views again
and answers. The table is rendered here for both paths.
"""

import _json
import posix
import sys
import time

from runtime.container.viewcheck import ctimes, key_text, open_dir, processes_unchanged


def _load_sqlite():
    """The `_sqlite3` C module without importing functools and collections (3 ms of a 17 ms
    `ps`): its initialisation only takes `functools.lru_cache`, which each connection wraps
    around itself as its statement cache. With an identity `lru_cache` for that one import a
    connection prepares each statement anew, which `ps`'s single query never repeats; a later
    `import functools` loads the real module."""
    if "_sqlite3" in sys.modules or "functools" in sys.modules:
        import _sqlite3

        return _sqlite3
    stub = type(sys)("functools")
    stub.lru_cache = lambda maxsize=128, typed=False: lambda function: function
    sys.modules["functools"] = stub
    try:
        import _sqlite3
    finally:
        del sys.modules["functools"]
    return _sqlite3


_sqlite3 = _load_sqlite()

_encode = _json.encode_basestring  # json.dumps(text, ensure_ascii=False)


def _quote(text: str) -> str:
    """A command as docker ps quotes it (Go's strconv.Quote): printable text as it is (the
    truncation's "…", accents), anything else escaped: quotes, backslashes, control
    characters, and the invisible ones (DEL, bidi overrides) a hostile command could use to
    dress up the table."""
    quoted = _encode(text)
    if quoted.isprintable():
        return quoted
    return "".join(c if c.isprintable() else _escaped(c) for c in quoted)


def _escaped(char: str) -> str:
    """One character as Go writes it in a quoted string: \\uXXXX, or \\UXXXXXXXX past 0xFFFF."""
    code = ord(char)
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


# `ps`'s flags: anything else goes through argparse.
_FLAGS = {
    "-a": "all",
    "--all": "all",
    "-q": "quiet",
    "--quiet": "quiet",
    "--no-trunc": "no_trunc",
}
_TITLES = ["CONTAINER ID", "IMAGE", "COMMAND", "CREATED", "STATUS", "PORTS", "NAMES"]
_SHOWN = ("running", "paused", "restarting")  # without -a


def flags(argv: list[str]) -> set[str] | None:
    """The flags of `ps [-a] [-q] [--no-trunc]` (short flags may be joined: -aq); None for
    anything else (help, other flags, another command)."""
    if not argv or argv[0] != "ps":
        return None
    found = set()
    for word in argv[1:]:
        if word in _FLAGS:
            found.add(_FLAGS[word])
        elif len(word) > 2 and word[0] == "-" and word[1] != "-" and set(word[1:]) <= {"a", "q"}:
            found.update(_FLAGS["-" + c] for c in word[1:])
        else:
            return None
    return found


class _Context:
    """What _json's scanner asks of a JSONDecoder (the defaults of json.loads)."""

    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    parse_constant = None  # NaN/Infinity never appear in a view


_scan = _json.make_scanner(_Context())


def loads(text: str):
    """json.loads of a whole document, without importing json."""
    value, end = _scan(text, 0)
    if text[end:].strip():
        raise ValueError("extra data")
    return value


def _root(environ) -> tuple[str, str] | None:
    """(state root, run root) from BERTH_*; None when BERTH_PREFIX is invalid (the full
    path reports it)."""
    prefix = environ.get("BERTH_PREFIX")
    if prefix and not (
        2 <= len(prefix) <= 8
        and "a" <= prefix[0] <= "z"
        and all("a" <= c <= "z" or "0" <= c <= "9" for c in prefix)
    ):
        return None
    return (
        environ.get("BERTH_ROOT") or "/var/lib/berth",
        environ.get("BERTH_RUN_ROOT") or "/run/berth",
    )


def kept_states(root: str, run_root: str) -> list[dict] | None:
    """Every container's list() entry (without its spec) from the kept views, oldest first;
    None unless every container on disk has a valid view."""
    containers = f"{root}/containers"
    index = f"{containers}/.index.db"
    try:
        posix.stat(index)
    except OSError:
        return None
    # mode=rw: never create the file (the full path creates it private, with its schema).
    conn = _sqlite3.connect(f"file:{index}?mode=rw", timeout=60, uri=True, isolation_level=None)
    try:
        rows = conn.execute(
            "SELECT c.id, c.dirty, v.vkey, json_remove(v.view, '$.spec') "
            "FROM containers c LEFT JOIN views v ON v.id = c.id"
        ).fetchall()
    finally:
        conn.close()
    cdir = open_dir(containers)
    if cdir < 0:
        return None
    rdir = open_dir(f"{run_root}/containers")
    try:
        on_disk = {e.name for e in posix.scandir(cdir) if e.is_dir() and not e.name.startswith(".")}
        if len(on_disk) != len(rows):
            return None  # a container without a row, or a row without a directory
        states = []
        for cid, dirty, vkey, view in rows:
            if dirty or view is None or cid not in on_disk:
                return None
            if vkey != key_text(ctimes(cdir, rdir, cid)):
                return None
            entry = loads(view)
            if not processes_unchanged(entry.pop("_procs", None)):
                return None
            states.append(entry)
    finally:
        posix.close(cdir)
        if rdir >= 0:
            posix.close(rdir)
    states.sort(key=lambda s: s["created"])
    return states


def _days(year: int, month: int, day: int) -> int:
    """Days since 1970-01-01 of a proleptic Gregorian date (no calendar or datetime import)."""
    year -= month <= 2
    era = year // 400
    yoe = year - era * 400
    doy = (153 * (month + (-3 if month > 2 else 9)) + 2) // 5 + day - 1
    return era * 146097 + yoe * 365 + yoe // 4 - yoe // 100 + doy - 719468


_DAYS: dict[str, int] = {}  # "YYYY-MM-DD" -> _days(): most containers share a few dates


def _epoch(iso: str) -> float:
    """Seconds since the epoch of an RFC 3339 time (to microseconds, as the full path read
    it); the runtime writes UTC ('Z'), any other offset goes through datetime."""
    if len(iso) == 30 and iso[19] == "." and iso[29] == "Z" and iso[10] == "T":
        # What the runtime writes (now_iso: nanoseconds, 'Z'), two per container: sliced
        # directly, each date's day count computed once (issue 19, ps at 300 containers).
        date = iso[:10]
        days = _DAYS.get(date)
        if days is None:
            days = _DAYS[date] = _days(int(iso[0:4]), int(iso[5:7]), int(iso[8:10]))
        seconds = days * 86400 + int(iso[11:13]) * 3600 + int(iso[14:16]) * 60 + int(iso[17:19])
        return seconds + int(iso[20:26]) / 10**6
    head, rest = iso[:19], iso[19:]
    frac = ""
    if rest.startswith("."):
        digits = rest[1 : len(rest) - len(rest[1:].lstrip("0123456789"))]
        frac, rest = digits[:6], rest[1 + len(digits) :]
    if rest not in ("", "Z", "+00:00") or len(head) < 19 or head[10] not in "Tt ":
        from datetime import datetime

        return datetime.fromisoformat(
            head + (f".{frac}" if frac else "") + rest.replace("Z", "+00:00")
        ).timestamp()
    seconds = (
        _days(int(head[0:4]), int(head[5:7]), int(head[8:10])) * 86400
        + int(head[11:13]) * 3600
        + int(head[14:16]) * 60
        + int(head[17:19])
    )
    return seconds + (int(frac) / 10 ** len(frac) if frac else 0)


def _ago(iso: str | None) -> str:
    if not iso:
        return ""
    seconds = int(time.time() - _epoch(iso))
    for unit, size in (("days", 86400), ("hours", 3600), ("minutes", 60)):
        if seconds >= size:
            return f"{seconds // size} {unit}"
    return f"{seconds} seconds"


def _status_text(st: dict) -> str:
    if st["status"] == "running":
        return f"Up {_ago(st['started_at'])}"
    if st["status"] == "paused":
        return f"Up {_ago(st['started_at'])} (Paused)"
    if st["status"] == "stopped":
        return f"Exited ({st['exit_code']}) {_ago(st['finished_at'])} ago"
    return st["status"].capitalize()


def _ports(st: dict) -> str:
    ports = (st.get("network") or {}).get("ports") or []
    return ", ".join(
        f"{p.get('host_ip') or '0.0.0.0'}:{p.get('host_port')}->{p.get('container_port')}/{p.get('protocol', 'tcp')}"
        for p in ports
    )


def table(titles, rows) -> str:
    """`rows` under `titles` in aligned columns, as docker prints them."""
    return _aligned([[str(c) for c in row] for row in [titles, *rows]])


def _aligned(lines: list[list[str]]) -> str:
    """Lines of strings in aligned columns (one pass per column for the widths)."""
    widths = [max(map(len, column)) for column in zip(*lines, strict=False)]
    return "".join(
        "   ".join([c.ljust(w) for c, w in zip(row, widths, strict=False)]).rstrip() + "\n"
        for row in lines
    )


def render(states: list[dict], found: set[str]) -> str:
    """`ps`'s output for `states` (oldest first) and its flags."""
    no_trunc = "no_trunc" in found
    states = [s for s in states if "all" in found or s["status"] in _SHOWN]
    if "quiet" in found:
        return "".join((s["id"] if no_trunc else s["id"][:12]) + "\n" for s in states)
    rows = []
    for st in reversed(states):
        cmd = " ".join(st.get("command") or [])
        if not no_trunc and len(cmd) > 20:
            cmd = cmd[:19] + "…"
        rows.append(
            [
                st["id"] if no_trunc else st["id"][:12],
                st["image"],
                _quote(cmd),
                f"{_ago(st['created'])} ago",
                _status_text(st),
                _ports(st),
                st["name"],
            ]
        )
    return _aligned([_TITLES, *rows])  # every cell is a str already


class _Environ:
    """os.environ.get over posix.environ (bytes on Linux), decoded as os decodes it."""

    @staticmethod
    def get(name: str, default=None):
        value = posix.environ.get(name.encode())
        return default if value is None else value.decode("utf-8", "surrogateescape")


def answer(argv: list[str], environ=None) -> int | None:
    """Print `ps`'s answer from the kept views and return 0; None when the full path must
    answer (other flags, an invalid view, an index that cannot be read). `environ`: a
    mapping of BERTH_* variables, the process's environment by default."""
    found = flags(argv)
    roots = _root(_Environ if environ is None else environ) if found is not None else None
    if roots is None:
        return None
    try:
        states = kept_states(*roots)
        if states is None:
            return None
        out = render(states, found)
    except (OSError, ValueError, KeyError, TypeError, AttributeError, _sqlite3.Error):
        return None  # the full path reads the files and reports what is wrong
    sys.stdout.write(out)
    sys.stdout.flush()
    return 0


def leave(code: int):
    """Exit with `code` once the table is flushed, skipping the interpreter's finalization
    (it tears every module down: 1.2 ms of a 12 ms `ps`); nothing else is left to do."""
    sys.stdout.flush()
    posix._exit(code)


def main(argv: list[str]) -> None:
    """What both entry points (`python -m runtime`, scripts/berth-runtime) do first for `ps`:
    answer from the kept views and exit; return when the full command line must answer."""
    code = answer(argv)
    if code is not None:
        leave(code)
