"""Enrolment: an admin adds a host and gets a one-time join token for its machine.

The token is a bearer secret worth exactly one thing: for as long as it is valid and unused,
whoever holds it can make their machine that host (its public key is recorded, and the control
plane's messages for the host are then meant for that machine). Only its SHA-256 hash is kept,
as for API tokens; the secret is shown once.
"""

import dataclasses
import secrets
from datetime import timedelta

from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts.models import TOKEN_PREFIX, hash_token
from config.errors import Conflict
from hosts.models import Host, JoinToken
from rbac import gate

JOIN_PREFIX = TOKEN_PREFIX + "join_"  # "berth_...": redacted wherever the audit log sees it
DEFAULT_TTL = timedelta(hours=1)
MAX_TTL = timedelta(hours=24)


def new_token(host: Host, *, ttl: timedelta = DEFAULT_TTL, created_by=None) -> tuple:
    """A fresh join token for `host`; returns (row, secret). The secret is never stored."""
    secret = JOIN_PREFIX + secrets.token_urlsafe(32)
    row = JoinToken.objects.create(
        host=host,
        token_hash=hash_token(secret),
        expires_at=timezone.now() + min(ttl, MAX_TTL),
        created_by=created_by,
    )
    return row, secret


def enrol_host(decision, *, name: str, address: str = "", ttl=DEFAULT_TTL, summary=None):
    """Create a pending host and its first join token (decision: the gate's host.create)."""
    if Host.objects.filter(name=name).exists():
        raise Conflict(f"a host named {name} exists", code="host_exists")
    try:
        with transaction.atomic():
            host = Host.objects.create(name=name, address=address, state=Host.State.PENDING)
            row, secret = new_token(host, ttl=ttl, created_by=decision.user)
            gate.record(
                dataclasses.replace(decision, obj=host),
                summary={**(summary or {}), "join_expires_at": row.expires_at.isoformat()},
            )
    except IntegrityError:  # a concurrent request took the name (or the queue) first
        raise Conflict(f"a host named {name} exists", code="host_exists") from None
    return host, row, secret


def reissue(decision, host: Host, *, ttl=DEFAULT_TTL, summary=None):
    """A new join token for a host that never joined; earlier unused tokens stop working."""
    if host.revoked_at is not None:
        raise Conflict(f"host {host.name} was removed; add it again under a new name")
    if host.state != Host.State.PENDING:
        raise Conflict(f"host {host.name} joined already; its agent holds its identity")
    now = timezone.now()
    with transaction.atomic():
        JoinToken.objects.filter(host=host, used_at__isnull=True).update(expires_at=now)
        row, secret = new_token(host, ttl=ttl, created_by=decision.user)
        gate.record(
            decision, summary={**(summary or {}), "join_expires_at": row.expires_at.isoformat()}
        )
    return row, secret
