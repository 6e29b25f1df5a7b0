"""Append events to the audit chain and verify it."""

import contextlib
import threading

import orjson
from django.db import DEFAULT_DB_ALIAS, connection, connections, models, transaction
from django.utils import timezone

from audit import context, journal
from audit.models import GENESIS_HASH, AuditEvent, ChainHead, JournalMark, chain_link
from audit.signals import recorded
from audit.sql import CONTENT_COLUMNS

MAX_REASON = 500


def _clean(text: str) -> str:
    """Text as both databases take it: NUL characters and lone surrogates (a JSON body's
    "\\ud800" decodes to one; UTF-8 has no encoding for it) written as escapes."""
    if not text.isascii():
        text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text.replace("\x00", "\\0")


def _text(value, limit: int) -> str:
    """A column's text as the database takes it (`_clean`), at most `limit` long (hostile
    input reaches the audit log verbatim: an id in a URL, a name in a body)."""
    return _clean(str(value))[:limit]


def _json(value):
    """A summary as jsonb takes it: every string `_clean`, keys included."""
    if isinstance(value, str):
        return _clean(value)
    if isinstance(value, dict):
        return {_json(str(k)): _json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json(v) for v in value]
    return value


def record_event(
    *,
    actor=None,
    action: str,
    outcome: str,
    reason: str = "",
    object_type: str = "",
    object_id="",
    object_repr: str = "",
    summary: dict | None = None,
    operation_id: int | None = None,
    task_id: str = "",
    journaled: bool = False,
) -> AuditEvent | None:
    """Append one event to the chain (inside the caller's transaction, if any); returns it once
    it is in the database (committed, outside a transaction). `journaled` (an allowed read,
    rbac.gate.record): outside a transaction, where this process keeps an audit journal
    (audit/journal.py), returns None once the journal holds it; the chain takes it within
    journal.FLUSH_SECONDS."""
    ctx = context.current()
    row = {
        "actor_id": getattr(actor, "pk", None),
        "actor": _text(getattr(actor, "username", "") or "", 150),
        "impersonator": _text(ctx.impersonator, 150),
        "action": _text(action, 64),
        "object_type": _text(object_type, 32),
        "object_id": "" if object_id is None else _text(object_id, 64),
        "object_repr": _text(object_repr, 200),
        "summary": _json(summary or {}),
        "source_ip": ctx.source_ip,
        "outcome": outcome,
        "reason": _text(reason, MAX_REASON),
        "request_id": _text(ctx.request_id, 64),
        "operation_id": operation_id,
        "task_id": _text(task_id or ctx.task_id, 64),
        "time": timezone.now(),
    }
    if journaled and not connection.in_atomic_block:
        # A row, not a model: the journal's thread makes the AuditEvent when the chain takes
        # it (building one here was a twentieth of an API list request, issue 19).
        book = journal.current(append_journaled)
        if book is not None and book.take(row):
            recorded.send(AuditEvent, action=row["action"], outcome=outcome)
            return None
    event = AuditEvent(**row)
    if connection.in_atomic_block:
        # Part of the caller's transaction (with the Operation it creates): written now, and
        # committed or rolled back with it.
        _append([event])
    else:
        _GROUP.append(event)
    return event


def _append(events: list[AuditEvent], *, mark: tuple[str, int] | None = None) -> None:
    """Chain `events` after the head and insert them: one head lock, one INSERT, one head
    update however many there are. `mark`: (journal file, bytes of it in the chain after
    these events), moved in the same transaction (SQLite only: audit/journal.py)."""
    now = timezone.now()
    for event in events:
        event.time = event.time or now  # record_event stamps its own; a test's may not
    if connection.vendor == "postgresql":
        if mark is not None:
            raise ValueError("audit journals are for SQLite")
        _append_in_database(events)
    else:
        _append_here(events, mark)
    if mark is None:
        _announce(events)


def append_journaled(events: list[AuditEvent], name: str, committed_bytes: int) -> None:
    """A journal's batch (audit/journal.py): its events chained and its file's mark moved, in
    one transaction; announced when journaled already."""
    _append(events, mark=(name, committed_bytes))


def _announce(events: list[AuditEvent]) -> None:
    """audit.signals.recorded for each event (the metrics count gate decisions from it)."""
    for event in events:
        recorded.send(AuditEvent, action=event.action, outcome=event.outcome)


def _append_in_database(events: list[AuditEvent]) -> None:
    """PostgreSQL: one statement (audit.sql's function) locks the head, links and inserts the
    events and moves the head; this process only hashes each event's own fields."""
    rows = []
    for event in events:
        row = {column: getattr(event, column) for column in CONTENT_COLUMNS}
        row["time"] = event.time.isoformat()
        row["content"] = event.content_hash()
        rows.append(row)
    # Alone (the group commit), the statement is its own transaction; inside a caller's, a
    # savepoint so that a refused event leaves the caller's transaction usable.
    alone = not connection.in_atomic_block
    with contextlib.nullcontext() if alone else transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SELECT * FROM berth_audit_append(%s::jsonb)", [orjson.dumps(rows).decode()])
        placed = cursor.fetchall()
    for event, (pk, seq, prev, link) in zip(events, placed, strict=True):
        event.pk, event.seq, event.prev_hash, event.hash = pk, seq, prev, link
        event._state.adding, event._state.db = False, connection.alias


# The INSERT's columns: every concrete field but the id, in the model's order.
_FIELDS = [f for f in AuditEvent._meta.concrete_fields if not f.primary_key]
# Values that a field's get_db_prep_save hands on unchanged: a str (or None) to a text field,
# an int (or None) to an integer field. record_event fills those fields with exactly such
# values, which then skip the call (1.3 % of an API list request in one process, issue 19).
# Any other value (a str for an integer field raises there, as it must), and every
# other field (date-time, JSON, address), goes through the field.
_NONE = type(None)
_AS_IS = {models.CharField: (str, _NONE), models.BigIntegerField: (int, _NONE),
          models.IntegerField: (int, _NONE)}  # fmt: skip
_PREPARED = [(f.attname, f, _AS_IS.get(type(f), ())) for f in _FIELDS]


def _parameters(event: AuditEvent, db) -> list:
    """The INSERT's parameters for `event`: what each field's get_db_prep_save gives."""
    params = []
    for name, field, as_is in _PREPARED:
        value = getattr(event, name)
        params.append(value if type(value) in as_is else field.get_db_prep_save(value, db))
    return params


class _SqliteSql:
    """The statements of an append on SQLite, written once per process."""

    def __init__(self):
        head = ChainHead._meta.db_table
        columns = ", ".join(f'"{f.column}"' for f in _FIELDS)
        marks = ", ".join("?" * len(_FIELDS))
        self.head = f'SELECT seq, last_hash FROM "{head}" WHERE id = 1'  # noqa: S608
        # The id is the cursor's lastrowid: RETURNING needs SQLite 3.35, Debian 11 has 3.34.
        self.insert = f'INSERT INTO "{AuditEvent._meta.db_table}" ({columns}) VALUES ({marks})'  # noqa: S608
        self.move = f'UPDATE "{head}" SET seq = ?, last_hash = ? WHERE id = 1'  # noqa: S608
        self.start = f'INSERT INTO "{head}" (id, seq, last_hash) VALUES (1, 0, ?)'  # noqa: S608
        marks = JournalMark._meta.db_table
        self.mark = (
            f'INSERT INTO "{marks}" (name, committed_bytes) VALUES (?, ?) '  # noqa: S608
            "ON CONFLICT (name) DO UPDATE SET committed_bytes = excluded.committed_bytes"
        )
        # Where the chain's own columns go among the INSERT's parameters.
        self.place = [_FIELDS.index(AuditEvent._meta.get_field(name))
                      for name in ("seq", "prev_hash", "hash")]  # fmt: skip


_SQLITE_SQL = None


def _append_here(events: list[AuditEvent], mark: tuple[str, int] | None = None) -> None:
    """SQLite: the head read, one INSERT per event and the head moved, by this process,
    through the driver's own connection. Django's cursor and atomic() around each statement
    cost more than SQLite's own work (0.26 -> 0.14 ms an append, issue 19). Outside a
    transaction (every request's decision, by way of the group commit) the statements are one
    IMMEDIATE transaction of their own, which locks the whole database meanwhile; inside the
    caller's (an operation and its events), a savepoint, so that a refused event leaves the
    caller's transaction usable, as atomic() does. Errors reach the caller as Django's, as
    they would through a cursor; the events get their ids and links only once written."""
    global _SQLITE_SQL
    sql = _SQLITE_SQL = _SQLITE_SQL or _SqliteSql()
    db = connections[DEFAULT_DB_ALIAS]
    db.validate_no_broken_transaction()  # as any query inside a failed atomic() block
    db.ensure_connection()
    raw = db.connection
    rows = [_parameters(event, db) for event in events]
    seq_at, prev_at, hash_at = sql.place
    inside = db.in_atomic_block
    begin, end, undo = (
        ("SAVEPOINT berth_audit", "RELEASE berth_audit",
         ("ROLLBACK TO berth_audit", "RELEASE berth_audit"))
        if inside
        else ("BEGIN IMMEDIATE", "COMMIT", ("ROLLBACK",))
    )  # fmt: skip
    placed = []
    with db.wrap_database_errors:
        raw.execute(begin)  # failing, it leaves nothing to undo
        try:
            row = raw.execute(sql.head).fetchone()
            if row is None:  # a new database's first event
                raw.execute(sql.start, [GENESIS_HASH])
                row = (0, GENESIS_HASH)
            seq, prev = row
            for event, params in zip(events, rows, strict=True):
                seq += 1
                link = chain_link(prev, seq, event.content_hash())
                params[seq_at], params[prev_at], params[hash_at] = seq, prev, link
                placed.append((raw.execute(sql.insert, params).lastrowid, seq, prev, link))
                prev = link
            raw.execute(sql.move, [seq, prev])
            if mark is not None:
                raw.execute(sql.mark, list(mark))
            raw.execute(end)
        except BaseException:
            if raw.in_transaction:  # (SQLite rolls back by itself after a few errors)
                for statement in undo:
                    raw.execute(statement)
            raise
    for event, (pk, seq, prev, link) in zip(events, placed, strict=True):
        event.pk, event.seq, event.prev_hash, event.hash = pk, seq, prev, link
        event._state.adding, event._state.db = False, db.alias


class _Ticket:
    """One event waiting for a group commit, and how its write ended."""

    __slots__ = ("event", "done", "error")

    def __init__(self, event: AuditEvent):
        self.event, self.done, self.error = event, False, None


class _GroupCommit:
    """Appends of one process outside transactions, committed together (group commit).

    Every request of a busy server appends an event (each GET's allowed decision): one at a
    time they queue on the chain head's row lock, one transaction and one WAL flush each. Here
    a thread queues its event and takes the process's flush lock; whoever holds it writes every
    event queued by then in one transaction (one head lock and update, one INSERT); the threads
    behind it find their events written when they get the lock. Nothing is acknowledged early: record_event returns only after its own
    event is committed, so every decision is in the log before the request it belongs to goes
    on (the same guarantee as one append each). With one thread at a time the batch is that
    one event; there is no timer and no background thread.
    """

    def __init__(self, write):
        self._write_events = write  # _append (a test passes its own)
        self._queue_lock = threading.Lock()  # guards _queue
        self._flush_lock = threading.Lock()  # one writer per process at a time
        self._queue: list[_Ticket] = []

    def append(self, event: AuditEvent) -> None:
        ticket = _Ticket(event)
        with self._queue_lock:
            self._queue.append(ticket)
        with self._flush_lock:
            if not ticket.done:  # else the previous writer took it along
                with self._queue_lock:
                    batch, self._queue = self._queue, []
                self._write(batch)
        if ticket.error is not None:
            raise ticket.error

    def _write(self, batch: list[_Ticket]) -> None:
        try:
            self._write_events([t.event for t in batch])
        except Exception as err:
            if len(batch) == 1:
                batch[0].error = err
            else:
                # Whatever failed rolled the whole batch back: each event alone, so one that
                # cannot be written fails only its own request.
                for ticket in batch:
                    try:
                        self._write_events([ticket.event])
                    except Exception as single:  # noqa: BLE001 (raised in its own thread)
                        ticket.error = single
        finally:
            for ticket in batch:
                ticket.done = True


_GROUP = _GroupCommit(_append)


def verify_chain() -> list[str]:
    """Recompute every hash and link; return the problems found (empty when intact). Events
    appended before the link format (audit.models.chain_link) carry the first format's hash;
    it is accepted only until the first event in the link format."""
    # This process's waiting journaled events, and what dead processes' journals hold, first.
    journal.flush_pending()
    journal.recover_dead(append_journaled)
    problems = []
    prev_hash, prev_seq, linked = GENESIS_HASH, 0, False
    for event in AuditEvent.objects.order_by("seq").iterator(chunk_size=2000):
        if event.seq != prev_seq + 1:
            problems.append(f"event #{event.seq}: sequence gap after #{prev_seq} (events removed?)")
        if event.prev_hash != prev_hash:
            problems.append(f"event #{event.seq}: prev_hash does not match the event before it")
        if event.compute_hash() == event.hash:
            linked = True
        elif linked or event.legacy_hash() != event.hash:
            problems.append(f"event #{event.seq}: content does not match its hash (altered)")
        prev_hash, prev_seq = event.hash, event.seq
    head = ChainHead.objects.filter(pk=1).first()
    if head and (head.seq != prev_seq or head.last_hash != prev_hash):
        problems.append(
            f"chain head says #{head.seq} but the last event is #{prev_seq} (events removed at the end?)"
        )
    return problems


def vendor() -> str:
    """The database vendor (sqlite or postgresql), for callers that must know."""
    return connection.vendor
