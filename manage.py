#!/usr/bin/env python
"""Django's command-line utility for Berth's control plane."""

import os
import sys
from pathlib import Path


def main():
    """Put platform/ on the path (it is a source folder, not a package) and run the command."""
    sys.path.insert(0, str(Path(__file__).resolve().parent / "platform"))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.dev")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
