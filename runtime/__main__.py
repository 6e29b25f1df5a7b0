"""Entry point of `python -m runtime`.

`ps` with its usual flags first answers from the index's kept views with nothing but os, sys
and two C modules imported (runtime/cli/quickps.py); when a container must be observed it
skips argparse and every other command's module. A Python start is most of what `ps` costs
(issue 19).
"""

import sys


def _main() -> int:
    argv = sys.argv[1:]
    if argv[:1] == ["ps"]:
        from runtime.cli import quickps

        code = quickps.answer(argv)
        if code is not None:
            return code
        from runtime.cli import ps, run

        args = ps.quick_args(argv)
        if args is not None:
            return run(args)
    from runtime.cli import main

    return main(argv)


sys.exit(_main())
