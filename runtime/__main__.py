"""Entry point of `python -m runtime`.

`ps` with its usual flags first answers from the index's kept views with nothing but os, sys
and two C modules imported (runtime/cli/quickps.py); when a container must be observed it
skips argparse and every other command's module. A Python start is most of what `ps` costs
(issue 19): scripts/berth-runtime is the same command line without the site module and runpy.
"""

import sys

from runtime.cli.entry import main

sys.exit(main(sys.argv[1:]))
