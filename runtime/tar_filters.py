"""The tarfile module that has PEP 706's extraction filters, on every Python Berth runs on.

Image builds and volume transfers unpack archives only through the filters (absolute names,
"..", and links out of the tree refused). The standard library has them from 3.11.4 (and every
3.12+); Debian 12's 3.11.2 lacks them, so there the maintained backport of the module
(backports.tarfile, a dependency on 3.11) unpacks instead. That lets setup take the
distribution's interpreter, built with profile-guided and link-time optimisation and kept up
to date by apt, where a self-built one ran Berth's Python 1.2-1.6x slower (docs/benchmarks.md).
"""

import importlib
import tarfile
from types import ModuleType


def with_filters() -> ModuleType | None:
    """The standard library's tarfile where it has the filters, else the backport; None when
    neither is there (then nothing may be unpacked)."""
    if hasattr(tarfile, "data_filter"):
        return tarfile
    try:
        backport = importlib.import_module("backports.tarfile")
    except ImportError:
        return None
    return backport if hasattr(backport, "data_filter") else None
