"""A module imported on first attribute access: short commands (`ps`, `rm`) skip what only the
verbs that start containers need (ctypes, the shim binary's checks)."""

from __future__ import annotations

import importlib


class LazyModule:
    """Stands for module `name` until an attribute is read; then it is imported once."""

    def __init__(self, name: str):
        self._name = name
        self._module = None

    def __getattr__(self, attr: str):
        if self._module is None:
            self._module = importlib.import_module(self._name)
        return getattr(self._module, attr)
