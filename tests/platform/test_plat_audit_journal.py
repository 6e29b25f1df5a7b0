"""audit/journal.py: on an SQLite file, an allowed read's event is in the process's journal file
when record_event returns and in the chain after the process's thread (or a reader) appends it;
refusals and changes are in the chain at once; a dead process's journal is appended by the next
one, each line once, and a live one's is left alone.

Each test runs `manage.py shell` on a migrated database file of its own (the suite's database
is in memory, where there is no journal)."""

import json
import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from audit.services import record_event
from rbac import gate
from tests.migrated_db import migrated_sqlite

REPO = Path(__file__).resolve().parents[2]

# Shared by the scripts: the journal's thread appends only when asked (flush_pending), so the
# test sees the events where they are.
PRELUDE = r"""
import os, sys, time
from pathlib import Path
from audit import journal, services
from audit.models import AuditEvent, JournalMark
from audit.services import record_event, verify_chain
from rbac import gate
from rbac.gate import Decision

journal.FLUSH_SECONDS = journal.RECOVER_SECONDS = 3600

def read(i, **extra):
    return record_event(action="container.view", outcome="allowed", object_id=f"r{i}",
                        summary={"i": i}, journaled=True, **extra)

def chained():
    return list(AuditEvent.objects.order_by("seq").values_list("object_id", flat=True))

def files():
    return sorted(p.name for p in journal.folder_for(str(DB)).glob("*.journal"))
"""


class Stack:
    """A migrated database file and `manage.py` on it."""

    def __init__(self, tmp_path: Path):
        self.db = tmp_path / "berth.sqlite3"
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "BERTH_"))}
        self.env.pop("DATABASE_URL", None)
        self.env.update(
            DJANGO_SETTINGS_MODULE="config.settings.test",
            BERTH_DATA_DIR=str(tmp_path),
            BERTH_CONTROL_KEY_FILE=str(tmp_path / "control.key"),
            PYTHONPATH=f"{REPO / 'platform'}:{REPO}",
        )
        migrated_sqlite(
            self.db, lambda: self.manage("migrate", "--noinput", "--skip-checks", "-v0")
        )

    def _argv(self, *args):
        return [sys.executable, "manage.py", *args]

    def manage(self, *args, check=True) -> subprocess.CompletedProcess:
        done = subprocess.run(
            self._argv(*args), cwd=REPO, env=self.env, capture_output=True, text=True, timeout=120
        )
        if check:
            assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
        return done

    def script(self, body: str) -> str:
        return f"DB = {str(self.db)!r}\n" + PRELUDE + body

    def shell(self, body: str) -> str:
        return self.manage("shell", "-c", self.script(body)).stdout

    def start_shell(self, body: str) -> subprocess.Popen:
        return subprocess.Popen(
            self._argv("shell", "-c", self.script(body)),
            cwd=REPO, env=self.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip

    def sql(self, query: str, *params) -> list:
        with sqlite3.connect(self.db) as conn:
            rows = conn.execute(query, params).fetchall()
        conn.close()
        return rows

    def folder(self) -> Path:
        return Path(f"{self.db}-audit")


@pytest.fixture
def stack(tmp_path):
    return Stack(tmp_path)


def test_an_allowed_read_is_in_the_journal_first_and_refusals_and_changes_in_the_chain(stack):
    out = stack.shell(r"""
before = chained()
assert [read(i) for i in range(3)] == [None] * 3  # journaled: no event made yet
assert chained() == before, "an allowed read went to the chain before its journal"
book = journal._journal
assert book is not None and files() == [book.name] and book.pending() == 3
rows = [row for row, _ in book._queue]
lines = (journal.folder_for(str(DB)) / book.name).read_bytes().splitlines()
assert [journal.decode(line).object_id for line in lines] == ["r0", "r1", "r2"]

# Refusals, changes and reads inside a transaction: in the chain when the call returns.
gate.record(Decision(False, "no role", "container.view", resource="container"))
gate.record(Decision(True, "granted", "container.start", resource="container"))
from django.db import transaction
with transaction.atomic():
    record_event(action="container.view", outcome="allowed", object_id="in-tx", journaled=True)
now = chained()
assert now[len(before):] == ["", "", "in-tx"], now
assert book.pending() == 3
# gate.record journals an allowed read (outside a transaction, without an operation).
gate.record(Decision(True, "granted", "container.view", resource="container"), summary={"g": 1})
assert book.pending() == 4

journal.flush_pending()  # what a reader of the log does first
assert chained()[len(now):] == ["r0", "r1", "r2", ""], chained()
stored = AuditEvent.objects.filter(object_id__in=["r0", "r1", "r2"]).order_by("seq")
assert [(e.summary, e.time, e.request_id) for e in stored] == [
    ({"i": i}, r["time"], r["request_id"]) for i, r in enumerate(rows)]
assert all(e.hash and e.prev_hash for e in stored)
size = os.path.getsize(journal.folder_for(str(DB)) / book.name)
assert list(JournalMark.objects.values_list("name", "committed_bytes")) == [(book.name, size)]
assert verify_chain() == []
print("ok", book.name)
""")
    name = out.split("ok ")[1].split()[0]
    # The process ended normally: everything was in the chain, so its file and mark went.
    assert not (stack.folder() / name).exists()
    assert stack.sql("SELECT count(*) FROM audit_journalmark") == [(0,)]


def test_the_thread_appends_without_being_asked(stack):
    stack.shell(r"""
journal.FLUSH_SECONDS = 0.02
before = len(chained())
read(0)
deadline = time.monotonic() + 10
while len(chained()) == before and time.monotonic() < deadline:
    time.sleep(0.01)
assert chained()[before:] == ["r0"], chained()
assert journal._journal.pending() == 0
""")


DIES = r"""
read(0); read(1)
journal.flush_pending()  # these two are in the chain (and the mark after them)
for i in range(2, 5):
    read(i)
print("name", journal._journal.name, flush=True)
if WAIT:  # for the test to look, alive
    print("waiting", flush=True)
    time.sleep(3600)
os.kill(os.getpid(), 9)
"""


def test_a_dead_process_journal_is_appended_once_by_the_next(stack):
    done = stack.manage("shell", "-c", stack.script("WAIT = False\n" + DIES), check=False)
    assert done.returncode == -signal.SIGKILL, done.stderr[-2000:]
    name = done.stdout.split("name ")[1].split()[0]
    dead = stack.folder() / name
    assert dead.exists()
    assert [
        r[0] for r in stack.sql("SELECT object_id FROM audit_auditevent WHERE object_id LIKE 'r%'")
    ] == ["r0", "r1"]
    # Half a line at its end (it died writing it) and an unreadable line are left out.
    # Every column, but a time that is not a text.
    bad_time = json.dumps({**json.loads(dead.read_bytes().splitlines()[-1]), "time": 5}).encode()
    with dead.open("ab") as f:
        f.write(b'{"not": "an event"}\n' + bad_time + b'\n{"action": "container.vi')
    verify = stack.manage("verify_audit_chain")
    assert "audit chain intact" in verify.stdout
    rows = stack.sql(
        "SELECT object_id, summary FROM audit_auditevent WHERE object_id LIKE 'r%' ORDER BY seq"
    )
    assert [r[0] for r in rows] == ["r0", "r1", "r2", "r3", "r4"]
    assert rows[4][1] == '{"i": 4}' or rows[4][1] == '{"i":4}'
    assert not dead.exists()
    assert stack.sql("SELECT count(*) FROM audit_journalmark") == [(0,)]
    # Nothing to take twice.
    stack.manage("verify_audit_chain")
    assert len(stack.sql("SELECT 1 FROM audit_auditevent WHERE object_id LIKE 'r%'")) == 5


def test_a_live_process_journal_is_left_alone_until_it_dies(stack):
    live = stack.start_shell("WAIT = True\n" + DIES)
    try:
        name = None
        for line in live.stdout:
            if line.startswith("name "):
                name = line.split()[1]
            if line.startswith("waiting"):
                break
        assert name, live.stderr.read()[-2000:] if live.poll() is not None else "no name"
        # Another process's thread and verify_audit_chain both pass over a file in use.
        stack.shell(
            "assert journal.recover(journal.folder_for(str(DB)), services.append_journaled) == 0"
        )
        stack.manage("verify_audit_chain")
        assert (stack.folder() / name).exists()
        assert len(stack.sql("SELECT 1 FROM audit_auditevent WHERE object_id LIKE 'r%'")) == 2
    finally:
        live.kill()
        live.wait(timeout=30)
        live.stdout.close()
        live.stderr.close()
    # Dead now: the next process's thread takes it at its start.
    stack.shell(r"""
journal.RECOVER_SECONDS = 3600
journal.FLUSH_SECONDS = 0.01
read("new")
deadline = time.monotonic() + 10
while len([o for o in chained() if o.startswith("r")]) < 6 and time.monotonic() < deadline:
    time.sleep(0.01)
assert [o for o in chained() if o.startswith("r")] == ["r0", "r1", "r2", "r3", "r4", "rnew"], chained()  # the dead first
assert files() == [journal._journal.name]
""")


def test_a_long_file_all_in_the_chain_is_replaced(stack):
    stack.shell(r"""
journal.ROTATE_BYTES = 2000
seen = set()
for i in range(40):
    read(i)
    seen.add(journal._journal.name)
    if i % 5 == 4:
        journal.flush_pending()
        seen.add(journal._journal.name)
        assert len(files()) == 1 and files() == [journal._journal.name]
assert len(seen) > 3
assert [o for o in chained() if o.startswith("r")] == [f"r{i}" for i in range(40)]
marks = list(JournalMark.objects.values_list("name", flat=True))
assert set(marks) <= {journal._journal.name}, marks
assert verify_chain() == []
""")


def test_a_forked_child_keeps_a_journal_of_its_own(stack):
    stack.shell(r"""
read("parent")
parent = journal._journal
child = os.fork()
if child == 0:
    code = 1
    try:
        assert journal._journal is None
        # The child's own file (its thread waits: the test stops before it touches the database).
        assert journal.current(lambda *a: None) is not parent
        mine = journal._journal
        assert mine.name.startswith(f"{os.getpid()}-") and mine.take(journal.row_of(services.AuditEvent(
            action="container.view", outcome="allowed", object_id="child",
            time=parent._queue[0][0]["time"])))
        assert mine.pending() == 1 and len(files()) == 2
        code = 0
    finally:
        os._exit(code)
_, status = os.waitpid(child, 0)
assert status == 0, status
assert parent.pending() == 1
journal.flush_pending()
assert "rparent" in chained() and "child" not in chained()
""")


def test_gate_journals_only_allowed_reads_without_an_operation(monkeypatch):
    asked = []
    monkeypatch.setattr(gate, "record_event", lambda **kw: asked.append(kw))

    def journaled(decision, **kw):
        gate.record(decision, **kw)
        return asked.pop()["journaled"]

    view = gate.Decision(True, "granted", "container.view", resource="container")
    assert journaled(view) is True
    assert journaled(gate.Decision(True, "granted", "audit.read", resource="audit")) is True
    assert journaled(gate.Decision(False, "no role", "container.view")) is False
    assert journaled(gate.Decision(True, "granted", "container.start")) is False
    assert journaled(view, outcome=gate.FAILED) is False
    assert journaled(view, operation=type("Op", (), {"pk": 3, "task_id": "t"})()) is False
    assert journaled(gate.Decision(True, "granted", "nothing.view")) is False  # not declared


@pytest.mark.django_db
def test_no_journal_on_a_database_in_memory():
    from audit import journal
    from audit.models import AuditEvent

    event = record_event(action="container.view", outcome="allowed", journaled=True)
    assert journal._journal is None
    assert AuditEvent.objects.filter(pk=event.pk).exists()


def test_a_line_holds_every_column_and_nothing_else():
    from audit import journal
    from audit.models import AuditEvent

    with pytest.raises(ValueError):
        journal.decode(b'{"action": "container.view"}')
    with pytest.raises(ValueError):
        journal.decode(b"[1, 2]")
    event = AuditEvent(action="x.view", outcome="allowed", summary={"k": ["v"]}, time=_now())
    back = journal.decode(journal.encode(journal.row_of(event)).rstrip(b"\n"))
    assert (back.action, back.summary, back.time, back.pk) == (
        "x.view",
        {"k": ["v"]},
        event.time,
        None,
    )


def _now():
    from django.utils import timezone

    return timezone.now()


def test_a_root_process_gives_its_journal_to_the_database_owner(stack):
    """An agent (root) journaling on the web's database: the folder and file are the database
    file's owner's, so that the web's processes may write and recover there too."""
    os.chown(stack.db, 65534, 65534)
    stack.shell(r"""
read(0)
book = journal._journal
folder = journal.folder_for(str(DB))
for path in (folder, folder / book.name):
    info = os.stat(path)
    assert (info.st_uid, info.st_gid) == (65534, 65534), (path, info)
assert oct(os.stat(folder).st_mode & 0o777) == "0o700"
assert oct(os.stat(folder / book.name).st_mode & 0o777) == "0o600"
journal.flush_pending()
""")


def test_an_event_the_chain_refuses_is_left_out_and_holds_back_no_other(stack):
    stack.shell(r"""
from django.db import IntegrityError
from django.utils import timezone

def bad(name):  # NOT NULL: the chain refuses it
    return AuditEvent(action=None, outcome="allowed", object_id=name, time=timezone.now())

read(0)
book = journal._journal
assert book.take(journal.row_of(bad("bad")))
journal.flush_pending()  # refused as a batch, then one at a time: r0 taken, "bad" left out
assert [o for o in chained() if o.startswith(("r", "bad"))] == ["r0"], chained()
assert book.pending() == 0
read(1)
assert book.take(journal.row_of(bad("bad2")))
read(2)
journal.flush_pending()
assert [o for o in chained() if o.startswith(("r", "bad"))] == ["r0", "r1", "r2"], chained()
size = os.path.getsize(journal.folder_for(str(DB)) / book.name)
assert JournalMark.objects.get(name=book.name).committed_bytes == size
# Alone, a refused event is not left out (the chain's fault or the event's, nothing tells
# yet): it waits to be tried again, as when the database is locked.
assert book.take(journal.row_of(bad("bad3")))
try:
    journal.flush_pending()
except IntegrityError:
    pass
else:
    raise AssertionError("a lone refused event was left out")
assert book.pending() == 1
read(3)
journal.flush_pending()  # with another event beside it, it is the event's fault
assert [o for o in chained() if o.startswith(("r", "bad"))] == ["r0", "r1", "r2", "r3"]
assert book.pending() == 0
assert verify_chain() == []
""")
