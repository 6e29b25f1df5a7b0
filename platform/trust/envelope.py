"""The signed envelope of one agent message: what, for which host, until when, on whose decision.

    seal(private_key, task=..., host=..., args=..., kwargs=..., decision=...) -> envelope dict
    open_sealed(envelope, trusted, task=..., host=..., args=..., kwargs=..., now=...) -> claims

The signature covers the task name, the target host, a digest of the arguments, the issue and
expiry times, a random nonce and, for read-style calls, the gate's decision (who, which action,
which object, whether root is allowed, until when). Anything else in the message is not trusted.
"""

import hashlib
import json
import secrets
import time
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature

from trust import keys

VERSION = 1


class Refused(Exception):
    """A message the agent must not act on; the text says why (for the host log and audit)."""


@dataclass(frozen=True)
class Claims:
    """What a verified envelope vouches for."""

    task: str
    host: str
    issued: float
    expires: float
    nonce: str
    signer: str
    decision: dict | None


def canonical(value) -> bytes:
    """One byte string per JSON value: sorted keys, no spaces (both ends compute the same)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def digest(args, kwargs) -> str:
    """SHA-256 of the task's arguments as JSON (after Celery's JSON round trip)."""
    return hashlib.sha256(canonical({"args": list(args), "kwargs": kwargs or {}})).hexdigest()


def seal(private_key, *, task, host, args, kwargs=None, decision=None, ttl=60.0, now=None) -> dict:
    """Sign a message for `host`; returns the envelope to send as the task's `envelope` kwarg."""
    issued = time.time() if now is None else now
    body = {
        "v": VERSION,
        "task": task,
        "host": host,
        "args": digest(args, kwargs),
        "issued": round(issued, 3),
        "expires": round(issued + ttl, 3),
        "nonce": secrets.token_hex(16),
        "kid": keys.key_id(keys.encode_public(private_key.public_key())),
        "decision": decision,
    }
    return {"body": body, "sig": private_key.sign(canonical(body)).hex()}


def open_sealed(envelope, trusted: dict, *, task, host, args, kwargs=None, now=None, skew=30.0):
    """Verify `envelope` for this task, host and arguments; returns Claims or raises Refused.

    `trusted` maps key ids to public keys (base64) this agent accepts for this task.
    """
    if not isinstance(envelope, dict) or not isinstance(envelope.get("body"), dict):
        raise Refused(f"unsigned message for {task}")
    body, sig = envelope["body"], envelope.get("sig")
    public = trusted.get(body.get("kid")) if isinstance(body.get("kid"), str) else None
    if public is None:
        raise Refused(f"message for {task} signed by an unknown or revoked key {body.get('kid')!r}")
    try:
        keys.decode_public(public).verify(bytes.fromhex(str(sig)), canonical(body))
    except (InvalidSignature, ValueError):
        raise Refused(f"message for {task} has a forged or damaged signature") from None
    if body.get("v") != VERSION or body.get("task") != task:
        raise Refused(f"message signed for task {body.get('task')!r}, delivered as {task}")
    if body.get("host") != host:
        raise Refused(f"message signed for host {body.get('host')!r}, not this host {host!r}")
    if body.get("args") != digest(args, kwargs):
        raise Refused(f"the arguments of {task} are not the ones that were signed")
    now = time.time() if now is None else now
    issued, expires = float(body["issued"]), float(body["expires"])
    if issued > now + skew:
        raise Refused(
            f"message issued {issued - now:.0f} s in the future: this host's clock is "
            f"{issued - now:.0f} s behind the control plane's (allowed skew {skew:g} s)"
        )
    if now > expires + skew:
        raise Refused(f"message for {task} expired {now - expires:.0f} s ago (replayed or late)")
    decision = body.get("decision")
    if decision is not None and float(decision.get("expires", 0)) < now - skew:
        raise Refused(
            f"the decision behind {task} expired (it allowed until {decision['expires']})"
        )
    return Claims(task, host, issued, expires, str(body["nonce"]), str(body["kid"]), decision)
