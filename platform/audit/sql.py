"""The PostgreSQL function that appends audit events and links them in one statement."""

from audit.models import GENESIS_HASH, PLACE, AuditEvent

EVENTS, HEAD = "audit_auditevent", "audit_chainhead"

# Every column an append writes but the chain's own (seq, prev_hash, hash): the event's
# content, the keys of the JSON objects the function takes (tests/platform/test_plat_audit.py
# checks them against the model's columns, so a new field cannot be left out silently).
CONTENT_COLUMNS = tuple(name for name in AuditEvent.HASHED_FIELDS if name not in PLACE)

_COLUMNS = ", ".join(CONTENT_COLUMNS)
_VALUES = ", ".join(f"r.{c}" for c in CONTENT_COLUMNS)

# Takes a JSON array of events (their columns, plus "content": the hash of their own fields,
# computed by the web), locks the head, gives each event the next number and its link
# (audit.models.chain_link), inserts it and moves the head; returns each event's id, number
# and hashes. One statement: the head's row lock is held only while the database runs it,
# never across a client's round trips (issue 15: a busy worker held it for milliseconds).
APPEND_FUNCTION = f"""
CREATE OR REPLACE FUNCTION berth_audit_append(events jsonb)
RETURNS TABLE (event_id bigint, event_seq bigint, event_prev text, event_hash text)
LANGUAGE plpgsql AS $$
DECLARE
    head_seq bigint;
    head_hash text;
    e jsonb;
    r {EVENTS};
BEGIN
    SELECT h.seq, h.last_hash INTO head_seq, head_hash FROM {HEAD} h WHERE h.id = 1 FOR UPDATE;
    IF NOT FOUND THEN
        INSERT INTO {HEAD} (id, seq, last_hash) VALUES (1, 0, '{GENESIS_HASH}')
            ON CONFLICT (id) DO NOTHING;
        SELECT h.seq, h.last_hash INTO head_seq, head_hash FROM {HEAD} h WHERE h.id = 1 FOR UPDATE;
    END IF;
    FOR e IN SELECT value FROM jsonb_array_elements(events) LOOP
        r := jsonb_populate_record(NULL::{EVENTS}, e);
        head_seq := head_seq + 1;
        event_prev := head_hash;
        head_hash := encode(sha256(convert_to(
            head_hash || ':' || head_seq::text || ':' || (e ->> 'content'), 'UTF8')), 'hex');
        INSERT INTO {EVENTS} (seq, {_COLUMNS}, prev_hash, hash)
            VALUES (head_seq, {_VALUES}, event_prev, head_hash)
            RETURNING id INTO event_id;
        event_seq := head_seq;
        event_hash := head_hash;
        RETURN NEXT;
    END LOOP;
    UPDATE {HEAD} SET seq = head_seq, last_hash = head_hash WHERE id = 1;
END $$
"""

DROP_FUNCTION = "DROP FUNCTION IF EXISTS berth_audit_append(jsonb)"
