"""The audit log is append-only in the model and in the database, and its hash chain detects tampering."""

import threading

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import DatabaseError, connection, transaction
from django.utils import timezone

from audit import context, services
from audit.models import AppendOnlyError, AuditEvent, ChainHead, chain_link
from audit.services import record_event, verify_chain
from audit.sql import CONTENT_COLUMNS

pytestmark = pytest.mark.django_db


@pytest.fixture
def events(users):
    with context.bind(request_id="tp-req-1", source_ip="127.0.0.1"):
        return [
            record_event(
                actor=users["admin"],
                action="container.start",
                outcome="allowed",
                object_type="container",
                object_id=i,
            )
            for i in range(3)
        ]


def test_events_chain_and_carry_context(events):
    first, second, third = events
    assert second.prev_hash == first.hash and third.prev_hash == second.hash
    assert third.seq == first.seq + 2
    assert first.request_id == "tp-req-1" and first.source_ip == "127.0.0.1"
    assert verify_chain() == []


def test_model_refuses_update_and_delete(events):
    event = events[0]
    event.reason = "changed"
    with pytest.raises(AppendOnlyError):
        event.save()
    with pytest.raises(AppendOnlyError):
        event.delete()
    with pytest.raises(AppendOnlyError):
        AuditEvent.objects.filter(pk=event.pk).update(reason="x")
    with pytest.raises(AppendOnlyError):
        AuditEvent.objects.all().delete()


@pytest.mark.parametrize(
    "sql",
    [
        "UPDATE audit_auditevent SET reason = 'forged' WHERE id = %s",
        "DELETE FROM audit_auditevent WHERE id = %s",
    ],
)
def test_database_triggers_refuse_raw_sql(events, sql):
    with (
        pytest.raises(DatabaseError, match="append-only"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute(sql, [events[0].pk])
    assert AuditEvent.objects.get(pk=events[0].pk).reason == ""


def _disable_triggers(cursor):
    # Only inside this test's transaction, which is rolled back afterwards.
    if connection.vendor == "sqlite":
        cursor.execute("DROP TRIGGER audit_no_update")
        cursor.execute("DROP TRIGGER audit_no_delete")
    else:
        cursor.execute("ALTER TABLE audit_auditevent DISABLE TRIGGER audit_no_update_delete")


def test_chain_detects_altered_event(events):
    with connection.cursor() as cursor:
        _disable_triggers(cursor)
        cursor.execute(
            "UPDATE audit_auditevent SET outcome = 'denied' WHERE id = %s", [events[1].pk]
        )
    problems = verify_chain()
    assert any(f"#{events[1].seq}" in p and "altered" in p for p in problems)
    with pytest.raises(CommandError, match="audit chain broken"):
        call_command("verify_audit_chain")


def test_chain_detects_removed_event(events):
    with connection.cursor() as cursor:
        _disable_triggers(cursor)
        cursor.execute("DELETE FROM audit_auditevent WHERE id = %s", [events[1].pk])
    assert any("gap" in p or "prev_hash" in p for p in verify_chain())


def test_chain_detects_truncated_tail(events):
    with connection.cursor() as cursor:
        _disable_triggers(cursor)
        cursor.execute("DELETE FROM audit_auditevent WHERE id = %s", [events[-1].pk])
    assert any("chain head" in p for p in verify_chain())


def test_verify_command_ok(events, capsys):
    call_command("verify_audit_chain")
    assert "intact" in capsys.readouterr().out


def test_group_commit_writes_waiting_events_together():
    # Threads outside a transaction (a busy server's requests) append while another thread's
    # write is in progress: the next write takes all of them in one batch, each thread returns
    # only after its own event was written, and none is written twice or lost.
    batches, first_in, release = [], threading.Event(), threading.Event()

    def write(events):
        if not batches:
            first_in.set()
            release.wait(30)  # the first write is slow: the others queue meanwhile
        batches.append([e.object_id for e in events])
        for e in events:
            e.seq = len(batches)

    group = services._GroupCommit(write)
    seen_after_return = {}

    def work(n):
        event = AuditEvent(action="container.view", outcome="allowed", object_id=str(n))
        group.append(event)
        seen_after_return[n] = event.seq  # set by the write: it happened before the return

    first = threading.Thread(target=work, args=(0,))
    first.start()
    assert first_in.wait(30)
    others = [threading.Thread(target=work, args=(n,)) for n in range(1, 6)]
    for t in others:
        t.start()
    while len(group._queue) < 5:  # all five queued behind the slow write
        threading.Event().wait(0.01)
    release.set()
    for t in [first, *others]:
        t.join(30)
    assert [sorted(b) for b in batches] == [["0"], ["1", "2", "3", "4", "5"]]
    assert seen_after_return == {0: 1, 1: 2, 2: 2, 3: 2, 4: 2, 5: 2}


def test_group_commit_chains_and_a_failure_is_only_the_bad_event(users):
    good = [
        AuditEvent(action="container.view", outcome="allowed", object_id=f"g{i}") for i in range(3)
    ]
    bad = AuditEvent(action="container.view", outcome="allowed", actor_id="not a number")
    tickets = [services._Ticket(e) for e in (good[0], bad, *good[1:])]
    services._GroupCommit(services._append)._write(tickets)  # the batch fails, then one by one
    assert all(t.done for t in tickets)
    assert [t.error is None for t in tickets] == [True, False, True, True]
    assert sorted(AuditEvent.objects.filter(object_id__startswith="g").values_list(
        "object_id", flat=True)) == ["g0", "g1", "g2"]  # fmt: skip
    services._GROUP.append(AuditEvent(action="container.view", outcome="allowed"))
    assert verify_chain() == []


def test_a_batch_append_gives_every_event_its_id_and_link(users):
    """The audit INSERT is written by hand (on SQLite through the driver, on PostgreSQL by
    audit.sql's function): in a batch of 130 every event gets its id; the rows read back as
    the model wrote them, and the chain verifies."""
    events = [
        AuditEvent(
            action="container.view",
            outcome="allowed",
            object_id=f"p{i}",
            summary={"k": [i, "x"]},
            source_ip="::1",
        )
        for i in range(130)
    ]
    services._append(events)
    ids = [e.pk for e in events]
    assert None not in ids and len(set(ids)) == len(ids)
    stored = AuditEvent.objects.get(pk=events[7].pk)
    assert (stored.object_id, stored.summary, stored.source_ip) == (
        "p7",
        {"k": [7, "x"]},
        "::1",
    )
    assert stored.hash == events[7].hash == stored.compute_hash()
    assert verify_chain() == []


def test_the_append_function_takes_every_content_column_of_the_model():
    """audit.sql's function lists the columns it copies: a field added to the model and left
    out of it would be silently dropped on PostgreSQL."""
    chain_own = {"id", "seq", "prev_hash", "hash"}
    model = {f.column for f in AuditEvent._meta.concrete_fields} - chain_own
    assert set(CONTENT_COLUMNS) == model


def test_an_event_links_to_the_one_before_by_its_number_and_content(events):
    """Every event's hash is chain_link(previous hash, number, own content) wherever it was
    computed (by the database on PostgreSQL): changing the number or the content breaks it."""
    stored = AuditEvent.objects.get(pk=events[1].pk)
    assert stored.hash == chain_link(events[0].hash, events[1].seq, stored.content_hash())
    stored.seq += 1
    assert stored.compute_hash() != events[1].hash


def _legacy_events(count: int) -> list[AuditEvent]:
    """Events written as the first format wrote them (one hash over every field)."""
    head = ChainHead.objects.get_or_create(pk=1)[0]
    seq, prev, made = head.seq, head.last_hash, []
    for n in range(count):
        seq += 1
        event = AuditEvent(action="container.view", outcome="allowed", object_id=f"old{n}")
        event.seq, event.time, event.prev_hash = seq, timezone.now(), prev
        event.hash = prev = event.legacy_hash()
        made.append(event)
    AuditEvent.objects.bulk_create(made)  # as they were: no link of the present format
    ChainHead.objects.filter(pk=1).update(seq=seq, last_hash=prev)
    return made


def test_a_chain_begun_in_the_first_format_verifies_after_the_link_format():
    """Events appended before the link format keep their hashes: the chain still verifies, and
    the next event links to the last old one."""
    old = _legacy_events(3)
    new = record_event(action="container.view", outcome="allowed", object_id="new")
    assert new.prev_hash == old[-1].hash and new.seq == old[-1].seq + 1
    assert verify_chain() == []


def test_an_event_in_the_first_format_after_a_linked_one_is_refused():
    """The first format is accepted only before the first linked event: an event forged in it
    later is reported."""
    record_event(action="container.view", outcome="allowed", object_id="new")
    forged = _legacy_events(1)[0]
    problems = verify_chain()
    assert any(f"#{forged.seq}" in p and "altered" in p for p in problems)


def test_lone_surrogates_and_nul_are_recorded_as_escapes():
    """A JSON body's "\\ud800" decodes to a lone surrogate, which UTF-8 cannot encode: the
    event is still written (escaped), on both databases, and the chain verifies."""
    event = record_event(
        action="container.create",
        outcome="denied",
        reason="bad name \ud800 and \x00",
        object_id="\udfff",
        summary={"k\ud800": ["v\udfff", "café"]},
    )
    stored = AuditEvent.objects.get(pk=event.pk)
    assert stored.reason == "bad name \\ud800 and \\0"
    assert stored.object_id == "\\udfff"
    assert stored.summary == {"k\\ud800": ["v\\udfff", "café"]}
    assert verify_chain() == []


def test_an_event_refused_inside_a_transaction_leaves_the_callers_work_usable(users):
    """Inside the caller's transaction an event is appended under a savepoint (on SQLite, the
    driver's own): refused, it takes back only itself."""
    from django.db import IntegrityError
    from django.db.models import F

    with transaction.atomic():
        first = record_event(action="container.view", outcome="allowed", object_id="tp-first")
        ChainHead.objects.filter(pk=1).update(seq=F("seq") - 1)  # the next number is taken
        with pytest.raises(IntegrityError):
            record_event(action="container.view", outcome="allowed", object_id="tp-refused")
        assert AuditEvent.objects.filter(pk=first.pk).exists()
        assert ChainHead.objects.get(pk=1).seq == first.seq - 1
        ChainHead.objects.filter(pk=1).update(seq=F("seq") + 1)
        record_event(action="container.view", outcome="allowed", object_id="tp-after")
    assert not AuditEvent.objects.filter(object_id="tp-refused").exists()
    assert AuditEvent.objects.filter(object_id="tp-after").exists()
    assert verify_chain() == []
