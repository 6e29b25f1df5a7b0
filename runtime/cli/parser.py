"""The command line's parser: a bad flag or value is one clear line and exit code 125.

argparse answers a mistake with the whole usage (19 lines for `run`) and exit code 2; Docker's
CLI, whose vocabulary this follows, prints one line naming the flag and exits 125.
"""

import argparse
import sys

USAGE_ERROR = 125


class OneLineParser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line; its subcommand parsers are of this class too."""

    def error(self, message):
        """Print `berth <command>: <message>` and a pointer to --help, then exit 125."""
        first = " ".join(message.split())  # argparse may wrap a long message over lines
        sys.stderr.write(f"{self.prog}: {first} (see '{self.prog} --help')\n")
        sys.exit(USAGE_ERROR)
