"""The WAL's checkpoints made by a thread of each process, not by a request's commit.

SQLite copies the WAL back into the database file (a checkpoint, with two fsyncs under
synchronous=NORMAL) inside whichever commit takes the WAL past 1,000 pages. Every API request
commits its audit event, about nine pages, so one request in about a hundred paid for the
checkpoint: 4.5 ms at p99 and up to 10 ms for a page of 10 whose median is 1 ms, and a mean
commit of 125 us against a median of 55 (issue 19). Here a thread of the process checks the
WAL's size ten times a second and makes the same PASSIVE checkpoint on a connection of its
own once it passes 1,000 pages: it waits for no reader or writer, and the sqlite3 module lets
other threads run meanwhile. The process's connections leave SQLite's own checkpoint to
commits past SAFETY_PAGES only: under a sustained write load a checkpoint made beside the
writers never finds the whole WAL copied, so the WAL is never started again from its
beginning and grows (113 MB in 30 s of bench/prod_load.py with the automatic checkpoint off
altogether, against 6 MB with SQLite's default); past SAFETY_PAGES a commit checkpoints as
SQLite's default does, and the WAL stays bounded.
"""

import logging
import os
import sqlite3
import threading

log = logging.getLogger("berth.sqlite")

# SQLite's own threshold (PRAGMA wal_autocheckpoint's default), in pages: the thread's.
WAL_PAGES = 1000
# The connections' own (PRAGMA wal_autocheckpoint): a commit checkpoints only past it.
SAFETY_PAGES = 4 * WAL_PAGES
INTERVAL_SECONDS = 0.1

_lock = threading.Lock()
_running: dict[tuple[int, str], "WalCheckpointer"] = {}


class WalCheckpointer:
    """One database file's checkpoints, every `interval` seconds once its WAL holds more than
    `pages` pages, by a daemon thread."""

    def __init__(self, path: str, *, pages: int = WAL_PAGES, interval: float = INTERVAL_SECONDS):
        self.path = path
        self.wal = f"{path}-wal"
        self.pages = pages
        self.interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._connection: sqlite3.Connection | None = None
        self._limit = 0  # bytes: pages * the file's page size, once known

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="berth-wal-checkpoint", daemon=True)
        self._thread.start()

    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def stop(self) -> None:
        """End the thread and close its connection (tests; a process's own ends with it)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.checkpoint_if_due()
            except Exception:  # noqa: BLE001 (a failed round must not end the thread)
                log.exception("WAL checkpoint of %s failed", self.path)

    def checkpoint_if_due(self) -> bool:
        """One round: a PASSIVE checkpoint when the WAL is past its threshold; whether one ran."""
        try:
            size = os.stat(self.wal).st_size
        except FileNotFoundError:
            return False
        if self._connection is None:
            # The thread's own connection: a request's connections belong to their threads.
            self._connection = sqlite3.connect(self.path, timeout=20, check_same_thread=False)
            page_size = self._connection.execute("PRAGMA page_size").fetchone()[0]
            self._limit = self.pages * page_size
        if size <= self._limit:
            return False
        # SQLite keeps the WAL file's size when it starts the WAL again from its beginning, so
        # once the file has grown every round checkpoints: with nothing left to copy, that is
        # a look at the WAL's index and no write.
        self._connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        return True


def ensure_running(path: str) -> bool:
    """Whether this process has a live checkpointer for `path` (one started if need be)."""
    key = (os.getpid(), path)  # per process: a forked child has none of its parent's threads
    with _lock:
        checkpointer = _running.get(key)
        if checkpointer is None or not checkpointer.alive():
            checkpointer = _running[key] = WalCheckpointer(path)
            checkpointer.start()
        return checkpointer.alive()


def stop_all() -> None:
    """Stop this process's checkpointers (tests)."""
    with _lock:
        checkpointers = [c for (pid, _), c in _running.items() if pid == os.getpid()]
        _running.clear()
    for checkpointer in checkpointers:
        checkpointer.stop()
