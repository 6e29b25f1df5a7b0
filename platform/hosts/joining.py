"""A new machine joins as its enrolled host by presenting the one-time join token.

The token is the only credential (no user is logged in), so each join is decided here and
written to the audit log through the gate as `host.join`, allowed or denied with the reason.
The token is used up by a conditional UPDATE (`used_at IS NULL AND expires_at > now`): of two
joins racing with the same token exactly one changes the row, the other is refused.
"""

import dataclasses
import hmac
import time

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from accounts.models import hash_token
from config.errors import Conflict, Forbidden, InvalidRequest, PlatformError
from hosts.models import Host, JoinToken
from rbac import gate
from trust import keys

ACTION = "host.join"


class _Refused(Exception):
    """Raised inside the claim's transaction to roll it back; carries the answer to give."""

    def __init__(self, error: PlatformError):
        super().__init__(error.message)
        self.error = error


@dataclasses.dataclass(frozen=True)
class Joined:
    """What the new agent is told: who it is and whom to trust."""

    host: Host
    control_keys: tuple[str, ...]

    def body(self) -> dict:
        """The JSON answer of the join endpoint."""
        answer = {
            "host": self.host.name,
            "queue": self.host.queue,
            "control_keys": list(self.control_keys),
            "server_time": round(time.time(), 3),
        }
        broker = getattr(settings, "BERTH_AGENT_BROKER_URL", "")
        if broker:  # else the agent uses its own REDIS_URL
            answer["broker_url"] = broker
        return answer


def skew_message(skew: float) -> str:
    """Name the clock difference so the operator knows what to fix."""
    side = "ahead of" if skew > 0 else "behind"
    return (
        f"this machine's clock is {abs(round(skew))} s {side} the control plane's; "
        "fix its time (NTP) and join again"
    )


def _deny(error: PlatformError, host=None, summary=None):
    gate.record_secret_use(ACTION, host, allowed=False, reason=error.message, summary=summary)
    raise error


def _find(token: str) -> JoinToken | None:
    wanted = hash_token(token)
    row = JoinToken.objects.select_related("host").filter(token_hash=wanted).first()
    # The lookup is by hash of a 256-bit secret; the compare is constant-time all the same.
    if row is None or not hmac.compare_digest(row.token_hash, wanted):
        return None
    return row


def claim(row: JoinToken, now) -> bool:
    """Use the token up once: True for the one caller whose UPDATE changed the row."""
    return bool(
        JoinToken.objects.filter(pk=row.pk, used_at__isnull=True, expires_at__gt=now).update(
            used_at=now
        )
    )


def join(*, token: str, public_key: str, agent_time: float, summary=None) -> Joined:
    """Check the token, the key and the agent's clock; record the key; refusals change nothing."""
    summary = dict(summary or {})
    now = timezone.now()
    row = _find(token)
    if row is None:
        _deny(Forbidden("unknown join token", code="join_token_unknown"), summary=summary)
    host = row.host
    if row.used_at is not None:
        _deny(Conflict("this join token was used already", code="join_token_used"), host, summary)
    if row.expires_at <= now:
        _deny(
            Forbidden(
                f"this join token expired at {row.expires_at.isoformat(timespec='seconds')}",
                code="join_token_expired",
            ),
            host,
            summary,
        )
    if host.revoked_at is not None:
        _deny(Forbidden(f"host {host.name} was removed", code="host_removed"), host, summary)
    skew = agent_time - time.time()
    summary["clock_skew_seconds"] = round(skew, 1)
    if abs(skew) > settings.BERTH_CHANNEL_SKEW_SECONDS:
        _deny(InvalidRequest(skew_message(skew), code="clock_skew"), host, summary)
    try:
        keys.decode_public(public_key)
    except ValueError:
        _deny(
            InvalidRequest(
                "public_key must be an Ed25519 public key: base64 of its 32 raw bytes",
                code="bad_public_key",
            ),
            host,
            summary,
        )
    summary["key"] = keys.key_id(public_key)
    holder = Host.objects.filter(public_key=public_key).exclude(pk=host.pk).first()
    if holder is not None:
        _deny(Conflict(f"this key belongs to host {holder.name} already"), host, summary)
    try:
        with transaction.atomic():
            if not claim(row, now):
                raise _Refused(Conflict("this join token was used already", code="join_token_used"))
            joined = Host.objects.filter(
                pk=host.pk, revoked_at__isnull=True, state=Host.State.PENDING
            ).update(public_key=public_key, state=Host.State.DOWN)
            if not joined:
                raise _Refused(Conflict(f"host {host.name} joined already", code="host_joined"))
            # Any other token of this host is worthless from now on.
            JoinToken.objects.filter(host=host, used_at__isnull=True).update(expires_at=now)
            host.refresh_from_db()
            gate.record_secret_use(
                ACTION, host, allowed=True, reason="valid join token", summary=summary
            )
    except _Refused as refused:
        _deny(refused.error, host, summary)
    return Joined(host, (keys.control_public_key(),))
