"""Entry point of `python -m runtime`.

`ps` with its usual flags skips argparse and every other command's module: a Python start is
most of what `ps` costs (issue 19), so it loads only what listing needs.
"""

import sys


def _main() -> int:
    argv = sys.argv[1:]
    if argv[:1] == ["ps"]:
        from runtime.cli import ps, run

        args = ps.quick_args(argv)
        if args is not None:
            return run(args)
    from runtime.cli import main

    return main(argv)


sys.exit(_main())
