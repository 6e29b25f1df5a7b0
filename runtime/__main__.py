"""Entry point of `python -m runtime`.

`ps` with its usual flags first answers from the index's kept views with nothing but sys, time
and three C modules imported (runtime/cli/quickps.py), and leaves without the interpreter's
finalization; when a container must be observed it skips argparse and every other command's
module. A Python start is most of what `ps` costs (issue 19): scripts/berth-runtime is the same
command line without the site module and runpy.
"""

import sys

argv = sys.argv[1:]
if argv[:1] == ["ps"]:  # only then: quickps loads _sqlite3 without functools' cache
    from runtime.cli import quickps

    quickps.main(argv)  # from the kept views: exits when it answers

from runtime.cli.entry import main  # noqa: E402 (only when the kept views did not answer)

sys.exit(main(argv))
