"""Join this machine to a Berth control plane as an enrolled host (stdlib HTTP only).

`scripts/berth-agent --join URL TOKEN` runs `manage.py join URL TOKEN`, which calls `join()`:
make a new Ed25519 key for the host, present the one-time token with the public half and this
machine's clock to POST <URL>/api/v1/hosts/join/, and on success write the identity file (mode
600) that the agent needs to verify the control plane's messages.
"""

import json
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent import identity
from trust import keys

ENDPOINT = "api/v1/hosts/join/"


class JoinFailed(Exception):
    """The join was refused or could not be made; str() is the reason to show."""


@dataclass(frozen=True)
class Result:
    """What a successful join did."""

    host: str
    queue: str
    path: Path
    key_id: str
    broker_url: str | None
    clock_offset: float  # server time minus this machine's, seconds (informational)


def endpoint(url: str) -> str:
    """The join endpoint under a control plane's base URL (or the endpoint itself)."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise JoinFailed(f"{url!r} is not an http(s) URL of the control plane")
    if parts.path.rstrip("/").endswith(ENDPOINT.rstrip("/")):
        return url
    return urllib.parse.urljoin(url.rstrip("/") + "/", ENDPOINT)


def _error_message(raw: bytes, status: int) -> str:
    try:
        return str(json.loads(raw)["error"]["message"])
    except (ValueError, KeyError, TypeError):
        return f"HTTP {status}: {raw[:200].decode(errors='replace')}"


def post_join(url: str, body: dict, *, timeout: float = 30) -> dict:
    """POST the join request; the answer's JSON, or JoinFailed with the server's message."""
    request = urllib.request.Request(
        endpoint(url),
        data=json.dumps(body).encode(),
        method="POST",
        headers={"Content-Type": "application/json", "Accept": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            raw = response.read()
    except urllib.error.HTTPError as err:
        raise JoinFailed(_error_message(err.read(), err.code)) from None
    except (urllib.error.URLError, OSError) as err:
        reason = getattr(err, "reason", err)
        raise JoinFailed(f"cannot reach the control plane at {url}: {reason}") from None
    try:
        answer = json.loads(raw)
        if not isinstance(answer, dict):
            raise ValueError("not an object")
        for field in ("host", "queue", "control_keys", "server_time"):
            answer[field]  # noqa: B018 - presence check
        for key in answer["control_keys"]:
            keys.decode_public(key)
    except (ValueError, KeyError, TypeError) as err:
        raise JoinFailed(f"the control plane's answer is not a join answer: {err}") from None
    return answer


def join(url: str, token: str, *, timeout: float = 30) -> Result:
    """Join with `token`; writes the identity file of the host the control plane names."""
    host_key = Ed25519PrivateKey.generate()
    public = keys.encode_public(host_key.public_key())
    sent_at = time.time()
    answer = post_join(
        url, {"token": token, "public_key": public, "agent_time": sent_at}, timeout=timeout
    )
    host = answer["host"]
    path = identity.identity_path(host)
    # The URL it joined with is where it reaches the control plane later (transfers).
    base = url.split("/api/v1/", 1)[0].rstrip("/")
    identity.write_identity(
        path,
        host,
        host_key,
        answer["control_keys"],
        control_url=base,
        broker_url=answer.get("broker_url") or "",
    )
    return Result(
        host=host,
        queue=answer["queue"],
        path=path,
        key_id=keys.key_id(public),
        broker_url=answer.get("broker_url"),
        clock_offset=float(answer["server_time"]) - (sent_at + time.time()) / 2,
    )
