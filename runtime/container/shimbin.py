"""Build (once) and find the C shim; without a C compiler the Python shim is used instead."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path

SOURCE = Path(__file__).with_name("shim.c")
_cache: dict[str, str | None] = {}

# Static first: a shim that maps no shared library has no relocated libc pages and fewer page
# tables, about 60 KB less kernel and anonymous memory for every idle container (issue 19).
# Dynamic where the C library has no static archive (libc6-dev without libc.a).
BUILDS = (("-O2", "-static"), ("-O2",))


def ensure(root: Path) -> str | None:
    """Path of the compiled shim for this source under root/bin, building it if needed."""
    key = str(root)
    if key in _cache:
        return _cache[key]
    if os.environ.get("BERTH_PYTHON_SHIM"):
        _cache[key] = None
        return None
    # The build's flags are part of the name: a changed build never reuses an old binary.
    digest = hashlib.sha256(SOURCE.read_bytes() + repr(BUILDS).encode()).hexdigest()[:16]
    target = root / "bin" / f"berth-shim-{digest}"
    _cache[key] = str(target) if target.exists() or _build(target) else None
    return _cache[key]


def _build(target: Path) -> bool:
    compiler = shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        return False
    tmp = target.with_name(f".{target.name}.{os.getpid()}")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        for flags in BUILDS:
            result = subprocess.run(
                [compiler, *flags, "-o", str(tmp), str(SOURCE)], capture_output=True, timeout=120
            )
            if result.returncode == 0:
                os.replace(tmp, target)  # atomic: concurrent builders agree on one binary
                return True
        return False
    except (OSError, subprocess.TimeoutExpired):
        return False
    finally:
        tmp.unlink(missing_ok=True)
