"""`python -m runtime`: Docker's vocabulary over the runtime API.

Each area registers its own subcommands with `register(subparsers)`; a handler gets the
parsed args (with `args.config`, a RuntimeConfig from BERTH_* variables) and returns the
exit code. Errors print one clear line and exit with the error's code (125 by default).
"""

from __future__ import annotations

import argparse
import importlib
import sys

from runtime.config import RuntimeConfig
from runtime.errors import BerthError

# Areas that register commands; a missing module (not built yet) is skipped.
_AREAS = (
    "runtime.cli.containers",
    "runtime.cli.images",
    "runtime.cli.registry",
    "runtime.cli.networks",
    "runtime.cli.checkpoints",
)


def build_parser() -> argparse.ArgumentParser:
    """The full parser with every registered area."""
    parser = argparse.ArgumentParser(prog="berth", description="Berth container runtime")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in _AREAS:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as err:
            if err.name != name:
                raise
            continue
        module.register(subparsers)
    return parser


def main(argv=None) -> int:
    """Parse, run the handler, turn BerthError into a message and an exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        args.config = RuntimeConfig.from_env()
        return args.func(args) or 0
    except BerthError as err:
        print(f"berth: {err}", file=sys.stderr)
        return err.exit_code
    except ValueError as err:  # e.g. an invalid BERTH_PREFIX
        print(f"berth: {err}", file=sys.stderr)
        return 125
    except KeyboardInterrupt:
        return 130
