"""Append-only audit events, each carrying the hash of the one before it."""

import hashlib
import json

from django.db import models


class AppendOnlyError(Exception):
    """Audit events are never changed or deleted."""


class AuditEventQuerySet(models.QuerySet):
    """Refuses bulk changes; the database triggers refuse them too."""

    def update(self, **kwargs):
        raise AppendOnlyError("the audit log is append-only: events cannot be updated")

    def delete(self):
        raise AppendOnlyError("the audit log is append-only: events cannot be deleted")

    _raw_delete = delete


class AuditEvent(models.Model):
    """One authorization decision or outcome: who, what, which object, when, from where, result."""

    class Outcome(models.TextChoices):
        ALLOWED = "allowed"
        DENIED = "denied"
        FAILED = "failed"  # allowed, then the action failed (e.g. the broker was down)

    seq = models.BigIntegerField(unique=True, editable=False)
    time = models.DateTimeField(db_index=True)
    actor_id = models.BigIntegerField(null=True, blank=True, db_index=True)
    actor = models.CharField(max_length=150, blank=True)  # kept as text: users may be deleted
    impersonator = models.CharField(max_length=150, blank=True)
    action = models.CharField(max_length=64, db_index=True)
    object_type = models.CharField(max_length=32, blank=True)
    object_id = models.CharField(max_length=64, blank=True)
    object_repr = models.CharField(max_length=200, blank=True)
    summary = models.JSONField(default=dict, blank=True)
    source_ip = models.GenericIPAddressField(null=True, blank=True)
    outcome = models.CharField(max_length=8, choices=Outcome.choices)
    reason = models.CharField(max_length=500, blank=True)
    request_id = models.CharField(max_length=64, blank=True, db_index=True)
    operation_id = models.BigIntegerField(null=True, blank=True)
    task_id = models.CharField(max_length=64, blank=True)
    prev_hash = models.CharField(max_length=64)
    hash = models.CharField(max_length=64, unique=True)

    objects = AuditEventQuerySet.as_manager()

    class Meta:
        ordering = ["-seq"]

    def __str__(self):
        return f"#{self.seq} {self.actor} {self.action} {self.object_type}:{self.object_id} {self.outcome}"

    HASHED_FIELDS = (
        "seq",
        "time",
        "actor_id",
        "actor",
        "impersonator",
        "action",
        "object_type",
        "object_id",
        "object_repr",
        "summary",
        "source_ip",
        "outcome",
        "reason",
        "request_id",
        "operation_id",
        "task_id",
        "prev_hash",
    )

    def content_hash(self) -> str:
        """sha256 over the canonical JSON of the event's own fields (not its place in the chain)."""
        data = {name: getattr(self, name) for name in self.HASHED_FIELDS if name not in PLACE}
        data["time"] = self.time.isoformat()
        return _sha256_json(data)

    def compute_hash(self) -> str:
        """The event's link: its content hash chained to its sequence number and the hash
        before it (the database computes the same link when it appends, see audit.sql)."""
        return chain_link(self.prev_hash, self.seq, self.content_hash())

    def legacy_hash(self) -> str:
        """The first format's hash (events appended before the link format): sha256 over the
        canonical JSON of every field but the hash itself."""
        data = {name: getattr(self, name) for name in self.HASHED_FIELDS}
        data["time"] = self.time.isoformat()
        return _sha256_json(data)

    def save(self, *args, **kwargs):
        if not self._state.adding:
            raise AppendOnlyError("the audit log is append-only: events cannot be updated")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise AppendOnlyError("the audit log is append-only: events cannot be deleted")


GENESIS_HASH = "0" * 64
PLACE = ("seq", "prev_hash")  # an event's place in the chain, hashed by its link


def _sha256_json(data: dict) -> str:
    canonical = json.dumps(
        data, sort_keys=True, separators=(",", ":"), ensure_ascii=True, default=str
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


def chain_link(prev_hash: str, seq: int, content_hash: str) -> str:
    """sha256 of "<prev_hash>:<seq>:<content_hash>", in hex: what ties an event to the one
    before it. Small and fixed so the database can compute it in the append's one statement."""
    return hashlib.sha256(f"{prev_hash}:{seq}:{content_hash}".encode()).hexdigest()


class ChainHead(models.Model):
    """The single row that serialises appends: the last sequence number and hash."""

    seq = models.BigIntegerField(default=0)
    last_hash = models.CharField(max_length=64, default=GENESIS_HASH)

    def __str__(self):
        return f"audit head #{self.seq}"


class JournalMark(models.Model):
    """How much of one process's audit journal file the chain holds (audit/journal.py): moved
    in the transaction that appends the file's events, so each line is appended once."""

    name = models.CharField(max_length=100, unique=True)  # the file's name in the journal folder
    committed_bytes = models.BigIntegerField(default=0)

    def __str__(self):
        return f"{self.name}: {self.committed_bytes} bytes in the chain"
