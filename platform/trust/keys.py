"""Ed25519 keys of the control channel: the control plane's signing key and the hosts' own keys.

The control plane signs every message it sends to an agent with its private key, kept in one
file readable by root only; agents hold only the public half, so a compromised host can verify
messages but never forge one for another host. Each host also has a key of its own, which its
agent uses for the messages it sends itself (heartbeat, reconcile).
"""

import base64
import functools
import os
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from django.conf import settings


def encode_public(key: Ed25519PublicKey) -> str:
    """A public key as base64 of its 32 raw bytes (what rows, files and envelopes carry)."""
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return base64.b64encode(raw).decode()


def decode_public(text: str) -> Ed25519PublicKey:
    """The inverse of encode_public (ValueError on anything else)."""
    raw = base64.b64decode(text, validate=True)
    return Ed25519PublicKey.from_public_bytes(raw)


def encode_private(key: Ed25519PrivateKey) -> str:
    """A private key as base64 of its 32 raw bytes (kept only in files of mode 600)."""
    raw = key.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    return base64.b64encode(raw).decode()


def decode_private(text: str) -> Ed25519PrivateKey:
    """The inverse of encode_private."""
    return Ed25519PrivateKey.from_private_bytes(base64.b64decode(text.strip(), validate=True))


def key_id(public: str) -> str:
    """A short, stable name of a public key, carried in envelopes (which key signed this)."""
    return base64.b64decode(public)[:6].hex()


def write_secret(path: Path, text: str) -> bool:
    """Create `path` with mode 600 holding `text`, unless it exists; True if this call made it."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return False  # another process made it first: use theirs
    with os.fdopen(fd, "w") as out:
        out.write(text + "\n")
    return True


def control_key_path() -> Path:
    """Where the control plane's private key lives (BERTH_CONTROL_KEY_FILE)."""
    return Path(settings.BERTH_CONTROL_KEY_FILE)


@functools.cache
def control_private_key() -> Ed25519PrivateKey:
    """The control plane's signing key, made on first use (mode 600)."""
    path = control_key_path()
    if not path.exists():
        write_secret(path, encode_private(Ed25519PrivateKey.generate()))
    return decode_private(path.read_text())


def control_public_key() -> str:
    """The control plane's public key, base64: what agents are given to verify with."""
    return encode_public(control_private_key().public_key())
