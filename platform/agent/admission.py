"""The agent's door: every message is verified before anything touches the runtime.

A message is admitted when its envelope (trust/envelope.py) is signed by a key this agent
trusts for that task, names this host and these arguments, is fresh, has not been seen before,
and this host is still enrolled. Read-style calls must also carry the gate's decision for this
object. Anything else is refused: logged on the host and recorded in the audit log as failed.
"""

import functools
import logging

from django.conf import settings

from agent import identity
from audit.services import record_event
from config.celery import app as celery_app
from hosts.models import Host
from trust import keys
from trust.envelope import Claims, Refused, open_sealed

log = logging.getLogger(__name__)

# Tasks the agent sends to its own queue, signed with its own host key.
SELF_TASKS = frozenset({"agent.heartbeat", "agent.reconcile_host", "agent.fair_turn"})
# Read-style calls and the gate action each must have been allowed.
READ_ACTIONS = {
    "agent.container_logs": "container.logs",
    "agent.container_stats": "container.stats",
    "agent.container_top": "container.top",
    "agent.container_exec": "container.exec",
}
NONCE_PREFIX = "berth:nonce:"


def trusted_keys(task: str) -> dict[str, str]:
    """Key id -> public key this agent accepts for `task`."""
    ident = identity.current()
    trusted = {keys.key_id(k): k for k in ident.control_keys}
    if task in SELF_TASKS:
        trusted[keys.key_id(ident.public_key)] = ident.public_key
    return trusted


@functools.cache
def _redis():
    # The broker's own connection settings (password, TLS) serve the nonce memory too.
    return celery_app.connection_for_write().default_channel.client


def remember_nonce(claims: Claims) -> bool:
    """Record the nonce until the message expires; False if it was seen already (a replay)."""
    ttl = max(1, int(claims.expires - claims.issued + 2 * settings.BERTH_CHANNEL_SKEW_SECONDS))
    return bool(_redis().set(NONCE_PREFIX + claims.nonce, claims.task, nx=True, ex=ttl))


def _still_enrolled(host_name: str) -> None:
    ident = identity.current()
    row = Host.objects.filter(name=host_name).values("revoked_at", "public_key").first()
    if row is None or row["revoked_at"] is not None:
        raise Refused(f"host {host_name} was removed: its key is revoked")
    if row["public_key"] and row["public_key"] != ident.public_key:
        raise Refused(f"host {host_name} is enrolled with another key than this agent's")


def _check_decision(task: str, args: list, claims: Claims) -> None:
    wanted = READ_ACTIONS.get(task)
    if wanted is None:
        return
    decision = claims.decision
    if not isinstance(decision, dict):
        raise Refused(f"{task} carries no decision of the gate")
    if decision.get("action") != wanted:
        raise Refused(f"{task} needs a decision for {wanted}, not {decision.get('action')!r}")
    if not args or str(decision.get("object")) != str(args[0]):
        raise Refused(f"the decision behind {task} is for another object")


def admit(task: str, args: list, kwargs: dict, envelope, *, host: str) -> Claims:
    """Verify one message for this agent; returns its claims or raises Refused (recorded)."""
    try:
        claims = open_sealed(
            envelope,
            trusted_keys(task),
            task=task,
            host=host,
            args=args,
            kwargs=kwargs,
            skew=settings.BERTH_CHANNEL_SKEW_SECONDS,
        )
        _check_decision(task, args, claims)
        _still_enrolled(host)
        if not remember_nonce(claims):
            raise Refused(f"message for {task} was already delivered once (replayed)")
    except Refused as err:
        refuse(task, host, str(err), envelope)
        raise
    return claims


def refuse(task: str, host: str, reason: str, envelope) -> None:
    """Log a refused message on the host and record it in the audit log as failed."""
    log.warning("refused a message for %s on host %s: %s", task, host, reason)
    body = envelope.get("body") if isinstance(envelope, dict) else None
    summary = {"task": task}
    if isinstance(body, dict):
        summary.update({k: str(body.get(k))[:80] for k in ("kid", "host", "nonce")})
        decision = body.get("decision")
        if isinstance(decision, dict):
            summary["decided_for"] = str(decision.get("username"))[:150]
    try:
        record_event(
            action="agent.message",
            outcome="failed",
            reason=reason,
            object_type="host",
            object_id=host,
            object_repr=host,
            summary=summary,
        )
    except Exception:  # the refusal stands even if the audit write fails; the log has it
        log.exception("could not record the refused message in the audit log")


class CommandDoor:
    """Checks the web terminal's commands to one session (Channels layer messages, which
    anyone with Redis access could also write): signed by the control plane for this host
    and session, in sequence, fresh."""

    def __init__(self, session: str, host: str):
        self.session, self.host = session, host
        self.last_seq = 0
        self.refused = 0

    def refusal(self, message) -> str:
        """Why `message` must be dropped, or "" when it is genuine."""
        from dashboard import terminal_protocol as proto

        if not isinstance(message, dict):
            return "a terminal command that is not an object"
        seq = message.get("seq")
        if not isinstance(seq, int) or seq <= self.last_seq:
            return f"terminal command out of sequence ({seq!r} after {self.last_seq})"
        try:
            open_sealed(
                message.get("envelope"),
                trusted_keys("term"),
                task=message.get("type"),
                host=self.host,
                args=proto.signed_args(self.session, seq, message),
                skew=settings.BERTH_CHANNEL_SKEW_SECONDS,
            )
        except Refused as err:
            return f"terminal command refused: {err}"
        self.last_seq = seq
        return ""

    def first_refusal(self) -> bool:
        """Count a refusal; True for the first of this session."""
        self.refused += 1
        return self.refused == 1

    def record(self, reason: str) -> None:
        """Log and audit a refused command (called once per session)."""
        refuse("agent.relay_terminal", self.host, f"session {self.session}: {reason}", None)
