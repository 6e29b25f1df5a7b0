"""One migrated SQLite database per test session, copied into every stack that needs one.

Running `manage.py migrate` on an empty file takes 3 to 5 s here, and the suite starts a few
dozen stacks. The first stack migrates as before; its fresh database is kept (through SQLite's
backup API, which copies a consistent image even in WAL mode) and the next stacks start from a
copy of it. Only the schema and the rows the migrations make are shared: nothing a test writes.
"""

import atexit
import shutil
import sqlite3
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path

_lock = threading.Lock()
_template: Path | None = None


def _copy(source: Path, dest: Path) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(source) as src, sqlite3.connect(dest) as dst:
        src.backup(dst)
    src.close()
    dst.close()


def migrated_sqlite(db_path: Path, migrate: Callable[[], object]) -> None:
    """Leave a freshly migrated database at db_path: `migrate()` runs once per session."""
    global _template
    with _lock:
        if _template is None:
            migrate()
            keep = Path(tempfile.mkdtemp(prefix="berth-migrated-"))
            atexit.register(shutil.rmtree, keep, True)
            _copy(db_path, keep / "berth.sqlite3")
            _template = keep / "berth.sqlite3"
            return
        template = _template
    _copy(template, db_path)
