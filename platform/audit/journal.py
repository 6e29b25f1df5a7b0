"""Allowed read decisions on SQLite: written to a journal file of the process before the
answer, and appended to the audit chain in batches by a thread of the process (issue 19).

Why: every API request appended its decision in a transaction of its own (BEGIN IMMEDIATE, the
chain's head, the row, the head moved, COMMIT): 0.2 ms of the 0.65 ms that a page of the
container list costs in the server's process, most of it the commit's WAL frames. Here the
request writes one line to a file, and the chain takes the lines of many requests in one
transaction.

What holds:
- Before the answer, the decision is in the journal: one write() of one line to a file in a
  folder beside the database file. That is the durability of a commit under SQLite's
  synchronous=NORMAL (config/env.py): in the system's cache, kept through any crash of the
  process; a power loss can take back both.
- Within FLUSH_SECONDS the process's thread appends the waiting events to the chain, in their
  order, in one transaction that also records how far into the file the chain holds
  (JournalMark): the two commit together, so each line is appended once.
- A process that dies leaves its file behind. The thread of any other process on the same
  database appends what the chain lacks (the lines after the file's mark) at its start and
  every RECOVER_SECONDS, then removes the file; so does `manage.py verify_audit_chain`. A file
  is known to be dead when its lock can be taken: its process holds it while it lives.
- Only allowed reads (rbac.gate.record): refusals and every change are appended before the
  answer as before, in the caller's transaction where there is one (with its Operation).
- Readers of the log in this process (the audit API and page, verify_chain) see this process's
  waiting events first (flush_pending()); another process's appear within FLUSH_SECONDS.

On PostgreSQL, with a database in memory, or with BERTH_AUDIT_JOURNAL=0, there is no journal:
each decision is appended before its answer.
"""

import contextlib
import fcntl
import logging
import multiprocessing.util
import os
import secrets
import threading
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import orjson
from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, DatabaseError, DataError, IntegrityError, connections

log = logging.getLogger("berth.audit")

FLUSH_SECONDS = 0.02
RECOVER_SECONDS = 5.0
RETRY_SECONDS = 1.0  # after a failed append (the database locked or down): wait, then again
MAX_BATCH = 500  # events in one transaction
ROTATE_BYTES = 8 << 20  # a file this long, all in the chain, is replaced by a new one
SUFFIX = ".journal"

# write(events, file name, bytes of that file in the chain after them): appends the events
# and moves the file's mark in one transaction (audit.services.append_journaled).
Write = Callable[[list, str, int], None]


# What one event can make the chain refuse (as opposed to the database being locked or down,
# which a later try may get past).
REFUSED = (IntegrityError, DataError, ValueError, TypeError)


def _write_all(write: Write, name: str, events: list, ends: list[int]) -> None:
    """Append `events` (their lines ending at `ends` in the file `name`) in one transaction.
    When the chain refuses that, one at a time: those it refuses while it takes others are
    left out (and logged), so that one bad event never holds back the rest; when it refuses
    every one (a single event included), the fault is the chain's or the database's, and the
    error goes up: they wait and are tried again."""
    try:
        write(events, name, ends[-1])
        return
    except REFUSED:
        if len(events) == 1:
            raise
    refused = []
    for event, end in zip(events, ends, strict=True):
        try:
            write([event], name, end)
        except REFUSED as err:
            refused.append((event, err))
    if len(refused) == len(events):
        raise refused[-1][1]
    for event, err in refused:
        log.error(
            "audit journal %s: the chain refuses one event (%s by %s: %s), left out",
            name, getattr(event, "action", "?"), getattr(event, "actor", "?"), err,
        )  # fmt: skip
    if refused and refused[-1][0] is events[-1]:
        write([], name, ends[-1])  # the mark past the last one: it is never tried again


def folder_for(database: str) -> Path:
    """The journal folder of a database file: beside it, on the same file system."""
    return Path(f"{database}-audit")


def _columns() -> tuple[str, ...]:
    from audit.sql import CONTENT_COLUMNS

    return CONTENT_COLUMNS


def row_of(event) -> dict:
    """An event's own columns, as record_event hands them to take()."""
    return {column: getattr(event, column) for column in _columns()}


def encode(row: dict) -> bytes:
    """One line: an event's own columns (time as ISO 8601 text)."""
    return orjson.dumps({**row, "time": row["time"].isoformat()}, default=str) + b"\n"


def _event(row: dict):
    """The unsaved AuditEvent of a row (made by the thread that appends it)."""
    from audit.models import AuditEvent

    return AuditEvent(**row)


def decode(line: bytes):
    """The event a line holds (unsaved: no number, no link)."""
    from audit.models import AuditEvent

    row = orjson.loads(line)
    if not isinstance(row, dict) or set(row) != set(_columns()):
        raise ValueError("not an audit journal line")
    row["time"] = datetime.fromisoformat(row["time"])  # (TypeError: not a text)
    return AuditEvent(**row)


def _mark_of(name: str) -> int:
    from audit.models import JournalMark

    return (
        JournalMark.objects.filter(name=name).values_list("committed_bytes", flat=True).first() or 0
    )


def _forget_mark(name: str) -> None:
    from audit.models import JournalMark

    JournalMark.objects.filter(name=name).delete()


class Journal:
    """One process's journal file, the events in it that the chain does not hold yet (in file
    order), and the daemon thread that appends them."""

    def __init__(self, folder: Path, write: Write, *, owner: tuple[int, int] | None = None):
        self.folder = folder
        # (uid, gid) given to the folder and files a root process makes (an agent's): the
        # database file's, so that the web's processes may write and recover there too.
        self.owner = owner
        # The module's values when the journal starts (a test sets them first).
        self.flush_seconds, self.recover_seconds = FLUSH_SECONDS, RECOVER_SECONDS
        self.rotate_bytes = ROTATE_BYTES
        self.broken = False  # a write failed: this process appends before the answers again
        self._write = write
        self._lock = threading.Lock()  # the file and the queue
        self._flush_lock = threading.Lock()  # one append to the chain at a time
        # (an event's row, the file's length after its line)
        self._queue: list[tuple[dict, int]] = []
        self._wake = threading.Event()
        self._stop = threading.Event()
        self.name, self.fd, self.size = self._new_file()
        self._thread = threading.Thread(target=self._run, name="berth-audit-journal", daemon=True)

    def _new_file(self) -> tuple[str, int, int]:
        if not self.folder.is_dir():
            self.folder.mkdir(mode=0o700, exist_ok=True)
            if self.owner is not None:
                os.chown(self.folder, *self.owner)
        name = f"{os.getpid()}-{secrets.token_hex(6)}{SUFFIX}"
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC
        fd = os.open(self.folder / name, flags, 0o600)
        if self.owner is not None:
            os.fchown(fd, *self.owner)
        # Held while this process lives: recovery takes only the files whose lock it can take.
        fcntl.flock(fd, fcntl.LOCK_EX)
        return name, fd, 0

    def start(self) -> "Journal":
        self._thread.start()
        return self

    def take(self, row: dict) -> bool:
        """Write the line of an event's row (row_of()'s columns): True once the file holds it
        (the chain takes it later); False when this journal cannot, and the caller appends
        the event itself."""
        if self.broken:
            return False
        try:
            line = encode(row)
        except (TypeError, ValueError):  # a value orjson refuses: the chain's own way takes it
            return False
        with self._lock:
            if self.broken:
                return False
            try:
                view = memoryview(line)
                while view:  # a regular file takes the whole line but on a full disk
                    view = view[os.write(self.fd, view) :]
            except OSError:
                # Perhaps half a line: nothing more is written after it, so a recovery finds
                # it last and without its newline, and leaves it out (no answer went out).
                self.broken = True
                log.exception(
                    "audit journal %s: cannot write; decisions are appended before their "
                    "answers again",
                    self.name,
                )
                return False
            self.size += len(line)
            self._queue.append((row, self.size))
            if len(self._queue) >= MAX_BATCH:
                self._wake.set()
        return True

    def pending(self) -> int:
        with self._lock:
            return len(self._queue)

    def flush(self) -> None:
        """Append every waiting event to the chain; returns once they are in it. A failed
        append leaves them waiting (and raises)."""
        with self._flush_lock:
            while True:
                with self._lock:
                    batch = self._queue[:MAX_BATCH]
                if not batch:
                    break
                events = [_event(row) for row, _ in batch]  # models made here, not in requests
                _write_all(self._write, self.name, events, [end for _, end in batch])
                with self._lock:
                    del self._queue[: len(batch)]
            self._rotate_if_due()

    def _rotate_if_due(self) -> None:
        """A long file whose every line is in the chain is replaced by a new one."""
        with self._lock:
            if self.size < self.rotate_bytes or self._queue:
                return
            old_name, old_fd = self.name, self.fd
            self.name, self.fd, self.size = self._new_file()
        # Unlinked before its lock goes: a recovery that opened it finds it gone, not dead.
        os.unlink(self.folder / old_name)
        os.close(old_fd)
        _forget_mark(old_name)

    def _run(self) -> None:
        next_recovery = 0.0  # at once: what dead processes left
        while not self._stop.is_set():
            self._wake.wait(self.flush_seconds)
            self._wake.clear()
            try:
                if time.monotonic() >= next_recovery:  # older events than this process's
                    recover(self.folder, self._write, own=self.name)
                    next_recovery = time.monotonic() + self.recover_seconds
                self.flush()
            except Exception:  # noqa: BLE001 (the thread must go on: the events wait in the file)
                log.exception("audit journal: appending to the chain failed; trying again")
                connections[DEFAULT_DB_ALIAS].close_if_unusable_or_obsolete()
                self._stop.wait(RETRY_SECONDS)

    def close(self) -> None:
        """Stop the thread and append what waits; the file goes once the chain holds it all."""
        self._stop.set()
        self._wake.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout=10)
        try:
            self.flush()
        except Exception:  # noqa: BLE001 (left for recovery by another process)
            log.exception("audit journal: %s kept for recovery", self.name)
            return
        with self._lock:
            if self._queue:
                return
            self.broken = True  # a late take() must not write to a closed (reused) descriptor
            os.unlink(self.folder / self.name)
            os.close(self.fd)
        _forget_mark(self.name)


def recover(folder: Path, write: Write, *, own: str | None = None) -> int:
    """Append what dead processes' journal files hold beyond their marks, remove the files,
    and forget marks left without a file; returns the number of events appended."""
    from audit.models import JournalMark

    if not folder.is_dir():
        return 0
    marks = set(JournalMark.objects.values_list("name", flat=True))  # read before the files
    found = 0
    names = set()
    for path in sorted(folder.glob(f"*{SUFFIX}")):
        names.add(path.name)
        if path.name != own:
            found += _recover_file(path, write)
    stale = marks - names - {own}
    if stale:
        JournalMark.objects.filter(name__in=stale).delete()
    return found


def _recover_file(path: Path, write: Write) -> int:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return 0
    except PermissionError:  # another user's (a process of the database file's owner takes it)
        return 0
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return 0  # its process lives
        try:
            if os.stat(path).st_ino != os.fstat(fd).st_ino:
                return 0
        except FileNotFoundError:
            return 0  # another recovery, or a rotation, removed it meanwhile
        found = _replay(path.name, fd, write)
        os.unlink(path)
        _forget_mark(path.name)
        return found
    finally:
        os.close(fd)


def _replay(name: str, fd: int, write: Write) -> int:
    """Append the complete lines after the file's mark, MAX_BATCH in a transaction."""
    start = _mark_of(name)
    os.lseek(fd, start, os.SEEK_SET)
    data = b""
    while chunk := os.read(fd, 1 << 20):
        data += chunk
    events, ends, offset = [], [], start
    # A last line without its newline was never whole (the process died writing it): no
    # answer went out for it.
    for line in data.split(b"\n")[:-1]:
        offset += len(line) + 1
        try:
            events.append(decode(line))
        except (ValueError, TypeError):  # (orjson's errors are ValueErrors too)
            log.error("audit journal %s: unreadable line at byte %d left out", name, offset)
            continue
        ends.append(offset)
    for at in range(0, len(events), MAX_BATCH):
        _write_all(write, name, events[at : at + MAX_BATCH], ends[at : at + MAX_BATCH])
    if events:
        log.warning("audit journal %s: %d event(s) of a dead process appended", name, len(events))
    return len(events)


_process_lock = threading.Lock()
_journal: Journal | None = None
_decided: tuple[int, bool] | None = None  # (pid, whether this process journals)


def _database_file() -> str | None:
    """The default database's file when it is an SQLite file; None otherwise."""
    database = connections[DEFAULT_DB_ALIAS]
    if database.vendor != "sqlite" or database.is_in_memory_db():
        return None
    return str(database.settings_dict["NAME"])


def _owner(database: str) -> tuple[int, int] | None:
    """The database file's (uid, gid) when this process is root and another user owns it."""
    if os.geteuid() != 0:
        return None
    info = os.stat(database)
    return None if info.st_uid == 0 else (info.st_uid, info.st_gid)


def current(write: Write) -> Journal | None:
    """This process's journal, started on first use; None when decisions go to the chain
    before their answers (the setting off, PostgreSQL, a database in memory)."""
    global _journal, _decided
    journal = _journal
    if journal is not None:
        return journal
    pid = os.getpid()
    if _decided == (pid, False):
        return None
    with _process_lock:
        if _journal is None:
            database = _database_file() if getattr(settings, "BERTH_AUDIT_JOURNAL", False) else None
            _decided = (pid, database is not None)
            if database is None:
                return None
            try:
                _journal = Journal(folder_for(database), write, owner=_owner(database)).start()
            except OSError:
                log.exception("audit journal: none for %s; decisions go to the chain", database)
                _decided = (pid, False)
                return None
            # At exit, the file goes once the chain holds it all; a worker process that
            # multiprocessing started runs no atexit handler, only its finalizers.
            multiprocessing.util.Finalize(None, _at_exit, exitpriority=10)
        return _journal


def flush_pending() -> None:
    """Put this process's waiting events in the chain (a reader of the log calls it first)."""
    journal = _journal
    if journal is not None and journal.pending():
        journal.flush()


def recover_dead(write: Write) -> int:
    """Append what dead processes left (`manage.py verify_audit_chain` calls it first)."""
    database = _database_file()
    if database is None:
        return 0
    return recover(folder_for(database), write, own=_journal.name if _journal else None)


def _after_fork_in_child() -> None:
    # The parent's file, lock, thread and waiting events stay the parent's: the child starts
    # its own journal on its first decision. Its copy of the descriptor is closed so that the
    # parent's lock goes when the parent dies.
    global _journal, _decided, _process_lock
    if _journal is not None:
        with contextlib.suppress(OSError):
            os.close(_journal.fd)
    _journal, _decided, _process_lock = None, None, threading.Lock()


def _at_exit() -> None:
    journal = _journal
    if journal is not None and journal.name is not None:
        with contextlib.suppress(DatabaseError, OSError):
            journal.close()
        journal.name = None  # closed: once


os.register_at_fork(after_in_child=_after_fork_in_child)
