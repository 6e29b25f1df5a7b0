"""`python -m runtime`: Docker's vocabulary over the runtime API.

Each area registers its own subcommands with `register(subparsers)`; a handler gets the
parsed args (with `args.config`, a RuntimeConfig from BERTH_* variables) and returns the
exit code. Errors print one clear line and exit with the error's code (125 by default).
"""

import sys

# Areas that register commands; a missing module (not built yet) is skipped.
_AREAS = (
    "runtime.cli.containers",
    "runtime.cli.ps",
    "runtime.cli.images",
    "runtime.cli.registry",
    "runtime.cli.networks",
    "runtime.cli.checkpoints",
)
# The areas a command word needs: only those are imported (each pulls in its own libraries),
# so `ps` does not pay for the registry client or the image store. Other words (help, a
# typo) load every area, so argparse can list them all.
_CONTAINERS = (
    "run create start stop restart kill pause unpause wait inspect top rm rename logs exec "
    "attach stats"
)
_WORDS = {
    **dict.fromkeys(_CONTAINERS.split(), ("runtime.cli.containers",)),
    "ps": ("runtime.cli.ps",),  # reads the index's kept views: neither runtime.api nor spec
    **dict.fromkeys(
        ["images", "rmi", "tag", "import", "load", "save"],
        ("runtime.cli.images", "runtime.cli.registry"),
    ),
    "image": ("runtime.cli.images", "runtime.cli.registry"),
    **dict.fromkeys(
        ["search", "pull", "push", "login", "logout", "build", "commit", "builder", "history"],
        ("runtime.cli.registry",),
    ),
    "network": ("runtime.cli.networks",),
    **dict.fromkeys(("checkpoint", "restore"), ("runtime.cli.checkpoints",)),
}


def _areas_for(argv) -> tuple[str, ...]:
    """The area modules the command line needs (every area when the command is unknown)."""
    word = next((a for a in argv if not a.startswith("-")), None)
    return _WORDS.get(word, _AREAS)


def build_parser(argv=None):
    """The argparse parser with the areas `argv` needs (None: every registered area).

    No annotation: `ps` must not import argparse or typing (runtime/__main__.py)."""
    import importlib

    from runtime.cli.parser import OneLineParser  # bad values: one line, exit 125

    parser = OneLineParser(prog="berth", description="Berth container runtime")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in _AREAS if argv is None else _areas_for(argv):
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
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    return run(args)


def run(args) -> int:
    """Run the parsed command's handler with the config from the environment."""
    from runtime.errors import BerthError

    try:
        from runtime.config import RuntimeConfig

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
