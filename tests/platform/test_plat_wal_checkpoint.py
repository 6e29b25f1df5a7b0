"""config.kept_sqlite3.checkpoint: a thread of the process checkpoints the WAL; no commit does."""

import os
import sqlite3
import time

import pytest
from django.db.utils import ConnectionHandler

from config.kept_sqlite3 import base as kept
from config.kept_sqlite3 import checkpoint

WAL_MODE = "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL"


@pytest.fixture
def database(tmp_path, django_db_blocker, settings):
    """A WAL database of its own (a file), as config.env.sqlite_database sets one up."""
    settings.BERTH_SQLITE_CHECKPOINT_THREAD = True
    path = str(tmp_path / "w.sqlite3")
    checkpoint.stop_all()
    kept._idle.clear()
    handler = ConnectionHandler(
        {
            "default": {
                "ENGINE": "config.kept_sqlite3",
                "NAME": path,
                "OPTIONS": {"init_command": WAL_MODE},
            }
        }
    )
    with django_db_blocker.unblock():
        yield handler, path
        handler["default"].close()
    for conns in kept._idle.values():
        for conn in conns:
            conn.close()
    kept._idle.clear()
    checkpoint.stop_all()


def quiet_checkpointer(path: str) -> checkpoint.WalCheckpointer:
    """This process's checkpointer for `path`, alive but never due on its own (the test runs
    its rounds)."""
    checkpointer = checkpoint.WalCheckpointer(path, interval=3600)
    checkpointer.start()
    checkpoint._running[(os.getpid(), path)] = checkpointer
    return checkpointer


def write_pages(db, pages: int) -> None:
    """About `pages` pages of 4 KiB, one commit of four pages each."""
    with db.cursor() as cursor:
        cursor.execute("CREATE TABLE IF NOT EXISTS blob (x BLOB)")
        for _ in range(pages // 4):
            cursor.execute("INSERT INTO blob VALUES (randomblob(16000))")


def test_a_connection_leaves_the_checkpoints_to_the_process_thread(database):
    handler, path = database
    db = handler["default"]
    db.ensure_connection()
    assert db.connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    pages = db.connection.execute("PRAGMA wal_autocheckpoint").fetchone()[0]
    assert pages == checkpoint.SAFETY_PAGES > checkpoint.WAL_PAGES
    assert checkpoint._running[(os.getpid(), path)].alive()


def test_commits_past_the_threshold_do_not_checkpoint_and_the_thread_does(database):
    handler, path = database
    checkpointer = quiet_checkpointer(path)
    db = handler["default"]
    write_pages(db, 1600)
    page = db.connection.execute("PRAGMA page_size").fetchone()[0]
    # Every frame is still in the WAL: no commit copied it back (SQLite's own checkpoint
    # would have restarted the WAL at 1,000 pages, keeping it about that size).
    assert os.stat(f"{path}-wal").st_size > 1400 * page
    assert os.stat(path).st_size < 100 * page
    assert checkpointer.checkpoint_if_due() is True
    assert os.stat(path).st_size > 1400 * page  # the rows are in the database file now
    # A reader sees them all, and there is nothing left to copy.
    other = sqlite3.connect(path)
    try:
        assert other.execute("SELECT count(*) FROM blob").fetchone()[0] == 400
        busy, frames, copied = other.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        assert busy == 0 and frames == copied
    finally:
        other.close()


def test_past_the_safety_threshold_a_commit_checkpoints_and_the_wal_stays_bounded(database):
    # A WAL the thread could not bring back (under a sustained load its checkpoints never
    # find the whole WAL copied): the commits take over, as SQLite's default does.
    handler, path = database
    quiet_checkpointer(path)
    db = handler["default"]
    write_pages(db, 3 * checkpoint.SAFETY_PAGES)
    page = db.connection.execute("PRAGMA page_size").fetchone()[0]
    assert os.stat(f"{path}-wal").st_size < (checkpoint.SAFETY_PAGES + 500) * page
    assert os.stat(path).st_size > 2 * checkpoint.SAFETY_PAGES * page


def test_below_the_threshold_nothing_is_copied(database):
    handler, path = database
    checkpointer = quiet_checkpointer(path)
    write_pages(handler["default"], 200)
    size = os.stat(path).st_size
    assert checkpointer.checkpoint_if_due() is False
    assert os.stat(path).st_size == size


def test_the_thread_checkpoints_on_its_own(database):
    handler, path = database
    checkpointer = checkpoint.WalCheckpointer(path, interval=0.05)
    checkpointer.start()
    checkpoint._running[(os.getpid(), path)] = checkpointer
    db = handler["default"]
    write_pages(db, 1600)
    page = db.connection.execute("PRAGMA page_size").fetchone()[0]
    deadline = time.monotonic() + 20
    while os.stat(path).st_size < 1400 * page:
        assert time.monotonic() < deadline, "the thread never checkpointed"
        time.sleep(0.05)


def test_a_failed_round_does_not_end_the_thread(database, monkeypatch):
    _, path = database
    checkpointer = checkpoint.WalCheckpointer(path, interval=0.01)
    rounds = []

    def failing():
        rounds.append(1)
        raise sqlite3.OperationalError("disk I/O error")

    monkeypatch.setattr(checkpointer, "checkpoint_if_due", failing)
    checkpointer.start()
    try:
        deadline = time.monotonic() + 10
        while len(rounds) < 3:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        assert checkpointer.alive()
    finally:
        checkpointer.stop()
    assert not checkpointer.alive()


def test_switched_off_the_commits_checkpoint_as_sqlite_does(database, settings):
    handler, path = database
    settings.BERTH_SQLITE_CHECKPOINT_THREAD = False
    db = handler["default"]
    db.ensure_connection()
    assert db.connection.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 1000
    assert (os.getpid(), path) not in checkpoint._running


def test_a_database_not_in_wal_mode_keeps_its_checkpoints(tmp_path, django_db_blocker, settings):
    settings.BERTH_SQLITE_CHECKPOINT_THREAD = True
    path = str(tmp_path / "d.sqlite3")
    handler = ConnectionHandler({"default": {"ENGINE": "config.kept_sqlite3", "NAME": path}})
    with django_db_blocker.unblock():
        db = handler["default"]
        db.ensure_connection()
        try:
            assert db.connection.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 1000
            assert (os.getpid(), path) not in checkpoint._running
        finally:
            db.connection.close()
            db.connection = None
