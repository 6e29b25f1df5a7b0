"""Requests signed by a host's own key: how an agent proves who it is to the web.

Header `Authorization: BerthHost host=<name>,ts=<unix seconds>,sig=<hex>`, the signature (by the
host's Ed25519 key, whose public half the Host row holds since it joined) over
"<METHOD>\n<path>\n<ts>\n<content sha256 or empty>". Refused: unknown or removed hosts, bad
signatures, and timestamps outside the allowed clock skew.
"""

import time

from cryptography.exceptions import InvalidSignature
from django.conf import settings

from hosts.models import Host
from trust import keys

SCHEME = "BerthHost"


class HostAuthFailed(Exception):
    """The request does not come from the host it claims."""


def message(method: str, path: str, ts: str, content_sha256: str = "") -> bytes:
    """The bytes a host signs for one request."""
    return f"{method.upper()}\n{path}\n{ts}\n{content_sha256}".encode()


def header(host_name: str, private_key, method: str, path: str, content_sha256: str = "") -> str:
    """The Authorization header value for one request (agent side)."""
    ts = str(int(time.time()))
    sig = private_key.sign(message(method, path, ts, content_sha256)).hex()
    return f"{SCHEME} host={host_name},ts={ts},sig={sig}"


def verify(value: str, method: str, path: str, content_sha256: str = "") -> Host:
    """The Host that signed this request (web side); HostAuthFailed with the reason otherwise."""
    scheme, _, params = (value or "").partition(" ")
    if scheme != SCHEME:
        raise HostAuthFailed("this endpoint takes requests signed by a host's key only")
    fields = dict(p.partition("=")[::2] for p in params.split(",") if "=" in p)
    name, ts, sig = fields.get("host", ""), fields.get("ts", ""), fields.get("sig", "")
    host = Host.objects.filter(name=name).first()
    if host is None or host.revoked_at is not None or not host.public_key:
        raise HostAuthFailed(f"host {name!r} is not an enrolled host")
    try:
        skew = abs(time.time() - int(ts))
        keys.decode_public(host.public_key).verify(
            bytes.fromhex(sig), message(method, path, ts, content_sha256)
        )
    except (ValueError, InvalidSignature):
        raise HostAuthFailed(f"the signature of host {name!r} does not verify") from None
    if skew > settings.BERTH_CHANNEL_SKEW_SECONDS:
        raise HostAuthFailed(f"the request of host {name!r} is {skew:.0f} s off this clock")
    return host
