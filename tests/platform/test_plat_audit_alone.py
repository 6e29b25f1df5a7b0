"""Events appended outside any transaction on SQLite (every request's decision, a group
commit's batch): the driver's own connection, one IMMEDIATE transaction, nothing left behind
when it is refused.

The tests of test_plat_audit.py run inside a transaction, where appends take a savepoint;
this one runs `manage.py shell` on a migrated database file of its own."""

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

from tests.migrated_db import migrated_sqlite

REPO = Path(__file__).resolve().parents[2]

SCRIPT = r"""
from django.db import IntegrityError, connection
from django.db.models import F

from audit import context, services
from audit.models import AuditEvent, ChainHead
from audit.services import record_event, verify_chain

with context.bind(request_id="tp-alone", source_ip="127.0.0.1"):
    made = [
        record_event(action="container.view", outcome="allowed", object_id=i, summary={"i": i})
        for i in range(3)
    ]
assert services._SQLITE_SQL is not None, "the append did not go through the driver's connection"
assert not connection.in_atomic_block and not connection.connection.in_transaction
stored = AuditEvent.objects.filter(request_id="tp-alone").order_by("seq")
got = [(e.pk, e.seq, e.prev_hash, e.hash, e.summary, e.source_ip) for e in stored]
want = [(e.pk, e.seq, e.prev_hash, e.hash, {"i": i}, "127.0.0.1") for i, e in enumerate(made)]
assert got == want, (got, want)
assert [e.prev_hash for e in made[1:]] == [e.hash for e in made[:-1]]
head = ChainHead.objects.get(pk=1)
assert (head.seq, head.last_hash) == (made[-1].seq, made[-1].hash)
assert verify_chain() == [], verify_chain()

# Refused by the database (the head moved back: the next number is taken): all rolled back.
ChainHead.objects.filter(pk=1).update(seq=F("seq") - 1)
head = ChainHead.objects.values_list("seq", "last_hash").get(pk=1)
count = AuditEvent.objects.count()
try:
    record_event(action="container.view", outcome="allowed", object_id="refused")
except IntegrityError as err:  # Django's class, as through a cursor
    print("refused:", err)
else:
    raise AssertionError("a taken number was appended")
assert not connection.connection.in_transaction
assert ChainHead.objects.values_list("seq", "last_hash").get(pk=1) == head
assert AuditEvent.objects.count() == count
ChainHead.objects.filter(pk=1).update(seq=F("seq") + 1)
last = record_event(action="container.view", outcome="allowed", object_id="after")
assert verify_chain() == [], verify_chain()

# A batch (the group commit under load) is one transaction too: written whole, or not at all.
batch = [AuditEvent(action="container.view", outcome="allowed", object_id=f"b{i}") for i in range(3)]
services._append(batch)
assert not connection.connection.in_transaction
assert [e.seq for e in batch] == [last.seq + 1, last.seq + 2, last.seq + 3]
assert [e.prev_hash for e in batch] == [last.hash, batch[0].hash, batch[1].hash]
assert AuditEvent.objects.filter(object_id__startswith="b").count() == 3
broken = [AuditEvent(action="container.view", outcome="allowed", object_id=f"x{i}") for i in range(3)]
broken[1].action = None  # NOT NULL: refused after the first row was written
count, head = AuditEvent.objects.count(), ChainHead.objects.values_list("seq", "last_hash").get(pk=1)
try:
    services._append(broken)
except IntegrityError:
    pass
else:
    raise AssertionError("a row without an action was appended")
assert not connection.connection.in_transaction
assert AuditEvent.objects.count() == count and all(e.pk is None for e in broken)
assert ChainHead.objects.values_list("seq", "last_hash").get(pk=1) == head
assert verify_chain() == [], verify_chain()
print("last", batch[-1].pk, batch[-1].seq)
"""


def test_appends_are_committed_and_chained_and_a_refused_one_leaves_nothing(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "BERTH_"))}
    env.pop("DATABASE_URL", None)
    env.update(
        DJANGO_SETTINGS_MODULE="config.settings.test",
        BERTH_DATA_DIR=str(tmp_path),
        BERTH_CONTROL_KEY_FILE=str(tmp_path / "control.key"),
        PYTHONPATH=f"{REPO / 'platform'}:{REPO}",
    )

    def manage(*args):
        done = subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=REPO, env=env, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr[-3000:]
        return done.stdout

    database = tmp_path / "berth.sqlite3"
    migrated_sqlite(database, lambda: manage("migrate", "--noinput", "--skip-checks", "-v0"))
    out = manage("shell", "-c", SCRIPT)
    assert "refused: UNIQUE constraint failed: audit_auditevent.seq" in out, out
    # Committed for every other connection too, the last event included.
    pk, seq = out.rpartition("last ")[2].split()
    with sqlite3.connect(database) as other:
        assert other.execute("SELECT seq FROM audit_auditevent WHERE id = ?", [pk]).fetchone() == (
            int(seq),
        )
    other.close()
