"""The audit log's signal."""

from django.dispatch import Signal

# Sent once for each event as it is recorded (appended to the chain, or written to the
# process's journal, audit/journal.py), sender AuditEvent, with its `action` and `outcome`:
# what the metrics count as gate decisions. No model instance is made for it: a journaled
# event becomes one only when the chain takes it.
recorded = Signal()
