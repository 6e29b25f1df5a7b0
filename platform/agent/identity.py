"""This agent's identity: its host name, its own key, and the control-plane keys it trusts.

Kept in one JSON file of mode 600 (BERTH_AGENT_IDENTITY, default
<data dir>/agents/<host>.json), written by `manage.py bootstrap` for the control plane's own
machine, or by `scripts/berth-agent --join URL TOKEN` on another one. The agent holds the
control plane's public key only: it can check the web's messages, not forge them.
"""

import functools
import json
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from django.conf import settings

from agent.hostname import this_host
from trust import keys


class MissingIdentity(Exception):
    """The agent cannot run: it has no identity file (it was never bootstrapped or joined)."""


@dataclass(frozen=True)
class Identity:
    """Who this agent is and whom it trusts."""

    host: str
    host_key: Ed25519PrivateKey
    control_keys: tuple[str, ...]
    control_url: str = ""  # the web's base URL, for the calls an agent makes (transfers)

    @property
    def public_key(self) -> str:
        """This host's public key (base64), as its Host row records it."""
        return keys.encode_public(self.host_key.public_key())


def identity_path(host: str | None = None) -> Path:
    """Where the identity of `host` (default: this agent's host) is kept."""
    explicit = os.environ.get("BERTH_AGENT_IDENTITY")
    if explicit:
        return Path(explicit)
    return Path(settings.DATA_DIR) / "agents" / f"{host or this_host()}.json"


def write_identity(
    path: Path,
    host: str,
    host_key: Ed25519PrivateKey,
    control_keys,
    control_url: str = "",
    broker_url: str = "",
) -> None:
    """Write (replace) an identity file with mode 600."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    body = {
        "host": host,
        "host_key": keys.encode_private(host_key),
        "control_keys": list(control_keys),
        "control_url": control_url,
        # The broker (with credentials) the control plane told it at join; scripts/berth-agent
        # uses it when REDIS_URL is not set.
        "broker_url": broker_url,
    }
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        json.dump(body, out)
    os.replace(tmp, path)


def read_identity(path: Path) -> Identity:
    """Parse an identity file (MissingIdentity with the reason when it is absent or broken)."""
    try:
        body = json.loads(path.read_text())
        return Identity(
            host=body["host"],
            host_key=keys.decode_private(body["host_key"]),
            control_keys=tuple(body["control_keys"]),
            control_url=str(body.get("control_url") or ""),
        )
    except FileNotFoundError:
        raise MissingIdentity(
            f"this agent has no identity at {path}: run `manage.py bootstrap` on the control "
            "plane's machine, or `scripts/berth-agent --join URL TOKEN` on a new host"
        ) from None
    except (ValueError, KeyError, TypeError) as err:
        raise MissingIdentity(f"the identity file {path} is damaged: {err}") from None


@functools.cache
def current() -> Identity:
    """This agent's identity (read once per process)."""
    ident = read_identity(identity_path())
    if ident.host != this_host():
        raise MissingIdentity(
            f"the identity file {identity_path()} belongs to host {ident.host!r}, "
            f"not {this_host()!r}"
        )
    return ident


def ensure_local(host, control_public_key: str) -> Identity:
    """Give `host` (a Host row on this machine) an identity unless it has one; records its key."""
    path = identity_path(host.name)
    try:
        ident = read_identity(path)
        if control_public_key not in ident.control_keys or ident.host != host.name:
            raise MissingIdentity("stale")
    except MissingIdentity:
        ident = Identity(host.name, Ed25519PrivateKey.generate(), (control_public_key,))
        write_identity(path, ident.host, ident.host_key, ident.control_keys)
    if host.public_key != ident.public_key:
        type(host).objects.filter(pk=host.pk).update(public_key=ident.public_key)
        host.public_key = ident.public_key
    return ident
