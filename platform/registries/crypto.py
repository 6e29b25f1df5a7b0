"""Registry passwords at rest: Fernet, keyed by HKDF from the settings secret (never plaintext)."""

import base64

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings

from config.errors import PlatformError

# Binds the derived key to this one use, so the same secret never keys two things alike.
_INFO = b"berth registry credentials v1"


class CredentialError(PlatformError):
    """A stored password cannot be decrypted (the settings secret changed)."""

    status = 500
    code = "credential_error"


def _fernet() -> Fernet:
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_INFO).derive(
        settings.SECRET_KEY.encode()
    )
    return Fernet(base64.urlsafe_b64encode(key))


def encrypt(plaintext: str) -> str:
    """The Fernet token (text) of a password; empty stays empty."""
    if not plaintext:
        return ""
    return _fernet().encrypt(plaintext.encode()).decode()


def decrypt(token: str) -> str:
    """The password of a stored token; CredentialError when the key no longer fits."""
    if not token:
        return ""
    try:
        return _fernet().decrypt(token.encode()).decode()
    except InvalidToken:
        raise CredentialError(
            "a stored registry password cannot be decrypted; an admin must set it again"
        ) from None
