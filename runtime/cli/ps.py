"""`ps`: the container list, in its own small module so the command starts quickly.

It imports neither runtime.api nor the spec: the list comes from the container index's kept
views (runtime/container/listing.py); only containers that changed since the last list are
observed, through a Runtime made then.
"""

from __future__ import annotations

from runtime.cli import quickps
from runtime.cli.quickps import table as _lines


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
    found = quickps.flags(argv)
    return None if found is None else _Args(found)


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


def table(titles, rows) -> None:
    """Print `rows` under `titles` in aligned columns, as docker does."""
    print(_lines(titles, rows), end="")


def _ps(args) -> int:
    found = {name for name in ("all", "quiet", "no_trunc") if getattr(args, name)}
    print(quickps.render(list_all(args.config), found), end="")
    return 0
