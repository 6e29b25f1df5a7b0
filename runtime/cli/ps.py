"""`ps`: the container list, in its own small module so the command starts quickly.

It imports neither runtime.api nor the spec: the list comes from the container index's kept
views (runtime/container/listing.py); only containers that changed since the last list are
observed, through a Runtime made then.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

# `ps`'s flags, for the quick path that skips argparse (runtime/__main__.py).
_FLAGS = {
    "-a": "all",
    "--all": "all",
    "-q": "quiet",
    "--quiet": "quiet",
    "--no-trunc": "no_trunc",
}


class _Args:
    """What argparse would give `_ps` (args.config is set by runtime.cli.run)."""

    def __init__(self, flags: set[str]):
        self.all = "all" in flags
        self.quiet = "quiet" in flags
        self.no_trunc = "no_trunc" in flags
        self.func = _ps


def quick_args(argv: list[str]) -> _Args | None:
    """The parsed `ps [-a] [-q] [--no-trunc]` (short flags may be joined: -aq); None for
    anything else (help, other flags, another command), which goes through argparse."""
    if not argv or argv[0] != "ps":
        return None
    flags = set()
    for word in argv[1:]:
        if word in _FLAGS:
            flags.add(_FLAGS[word])
        elif len(word) > 2 and word[0] == "-" and word[1] != "-" and set(word[1:]) <= {"a", "q"}:
            flags.update(_FLAGS["-" + c] for c in word[1:])
        else:
            return None
    return _Args(flags)


def register(subparsers) -> None:
    """Add `ps`."""
    p = subparsers.add_parser("ps", help="list containers")
    p.add_argument("-a", "--all", action="store_true")
    p.add_argument("-q", "--quiet", action="store_true")
    p.add_argument("--no-trunc", action="store_true")
    p.set_defaults(func=_ps)


def list_all(config) -> list[dict]:
    """Runtime.list() of `config`'s root, without the specs, and without loading runtime.api
    unless a container must be observed."""
    from runtime.container.listing import list_containers
    from runtime.container.store import ContainerStore

    def runtime():
        from runtime.api import Runtime

        return Runtime(config)

    return list_containers(ContainerStore(config), runtime, spec=False)  # ps shows no spec


def _ago(iso: str | None) -> str:
    if not iso:
        return ""
    then = (
        datetime.fromisoformat(iso[:26].rstrip("Z") + "+00:00")
        if "." in iso
        else datetime.fromisoformat(iso.replace("Z", "+00:00"))
    )
    seconds = int((datetime.now(UTC) - then).total_seconds())
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


def table(titles, rows) -> None:
    """Print `rows` under `titles` in aligned columns, as docker does."""
    widths = [max(len(str(r[i])) for r in [titles, *rows]) for i in range(len(titles))]
    for row in [titles, *rows]:
        print("   ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=False)).rstrip())


def _ps(args) -> int:
    states = [
        s
        for s in list_all(args.config)
        if args.all or s["status"] in ("running", "paused", "restarting")
    ]
    if args.quiet:
        for st in states:
            print(st["id"] if args.no_trunc else st["id"][:12])
        return 0
    rows = []
    for st in reversed(states):
        cmd = " ".join(st.get("command") or [])
        if not args.no_trunc and len(cmd) > 20:
            cmd = cmd[:19] + "…"
        rows.append(
            [
                st["id"] if args.no_trunc else st["id"][:12],
                st["image"],
                json.dumps(cmd),
                f"{_ago(st['created'])} ago",
                _status_text(st),
                _ports(st),
                st["name"],
            ]
        )
    table(["CONTAINER ID", "IMAGE", "COMMAND", "CREATED", "STATUS", "PORTS", "NAMES"], rows)
    return 0
