"""Append events to the audit chain and verify it."""

from django.db import connection, transaction
from django.utils import timezone

from audit import context
from audit.models import GENESIS_HASH, AuditEvent, ChainHead

MAX_REASON = 500


def _head() -> ChainHead:
    # select_for_update locks the head row on PostgreSQL; SQLite transactions start IMMEDIATE
    # (see config.env.sqlite_database), which locks the whole database for the append.
    head = ChainHead.objects.select_for_update().filter(pk=1).first()
    if head is None:
        head = ChainHead.objects.create(pk=1)
    return head


def _text(value, limit: int) -> str:
    """A column's text as PostgreSQL takes it: no NUL characters, at most `limit` long (hostile
    input reaches the audit log verbatim: an id in a URL, a name in a body)."""
    return str(value).replace("\x00", "\\0")[:limit]


def _json(value):
    """A summary as jsonb takes it: NUL characters escaped in every string, keys included."""
    if isinstance(value, str):
        return value.replace("\x00", "\\0")
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
) -> AuditEvent:
    """Append one event to the chain (inside the caller's transaction, if any)."""
    ctx = context.current()
    with transaction.atomic():
        head = _head()
        event = AuditEvent(
            seq=head.seq + 1,
            time=timezone.now(),
            actor_id=getattr(actor, "pk", None),
            actor=_text(getattr(actor, "username", "") or "", 150),
            impersonator=_text(ctx.impersonator, 150),
            action=_text(action, 64),
            object_type=_text(object_type, 32),
            object_id="" if object_id is None else _text(object_id, 64),
            object_repr=_text(object_repr, 200),
            summary=_json(summary or {}),
            source_ip=ctx.source_ip,
            outcome=outcome,
            reason=_text(reason, MAX_REASON),
            request_id=_text(ctx.request_id, 64),
            operation_id=operation_id,
            task_id=_text(task_id or ctx.task_id, 64),
            prev_hash=head.last_hash,
        )
        event.hash = event.compute_hash()
        event.save(force_insert=True)
        ChainHead.objects.filter(pk=1).update(seq=event.seq, last_hash=event.hash)
    return event


def verify_chain() -> list[str]:
    """Recompute every hash and link; return the problems found (empty when intact)."""
    problems = []
    prev_hash, prev_seq = GENESIS_HASH, 0
    for event in AuditEvent.objects.order_by("seq").iterator(chunk_size=2000):
        if event.seq != prev_seq + 1:
            problems.append(f"event #{event.seq}: sequence gap after #{prev_seq} (events removed?)")
        if event.prev_hash != prev_hash:
            problems.append(f"event #{event.seq}: prev_hash does not match the event before it")
        if event.compute_hash() != event.hash:
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
