"""Calls from an agent to the web, signed with the host's own key (transfers/hostauth.py)."""

import hashlib
import os
import urllib.error
import urllib.request
from pathlib import Path

from agent import identity
from runtime.errors import BerthError
from transfers import hostauth

CHUNK = 1024 * 1024


class ControlPlaneError(BerthError):
    """The web refused or could not be reached."""


def base_url() -> str:
    """The web's base URL: BERTH_CONTROL_URL, else the URL this host joined with."""
    url = os.environ.get("BERTH_CONTROL_URL") or identity.current().control_url
    if not url:
        raise ControlPlaneError(
            "this agent does not know the control plane's URL: set BERTH_CONTROL_URL "
            "(or join with scripts/berth-agent --join URL TOKEN)"
        )
    return url.rstrip("/")


def _request(method: str, path: str, *, data=None, sha256: str = "", length=None, headers=None):
    ident = identity.current()
    headers = dict(headers or {})
    headers["Authorization"] = hostauth.header(ident.host, ident.host_key, method, path, sha256)
    if sha256:
        headers["X-Berth-Content-Sha256"] = sha256
    if length is not None:
        headers["Content-Length"] = str(length)
        headers["Content-Type"] = "application/octet-stream"
    return urllib.request.Request(base_url() + path, data=data, method=method, headers=headers)


def _open(request, timeout: float):
    try:
        return urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as err:
        body = err.read(2000).decode(errors="replace")
        raise ControlPlaneError(f"the control plane answered {err.code}: {body}") from None
    except (urllib.error.URLError, OSError) as err:
        raise ControlPlaneError(f"cannot reach the control plane at {base_url()}: {err}") from None


def upload(path: str, archive: Path, sha256: str, *, timeout: float = 600, headers=None) -> None:
    """PUT a file to `path` (under /api/v1/...) with its checksum, signed by this host."""
    with open(archive, "rb") as body:
        request = _request(
            "PUT", path, data=body, sha256=sha256, length=archive.stat().st_size, headers=headers
        )
        _open(request, timeout).close()


def download(path: str, into: Path, *, timeout: float = 600, headers=None) -> str:
    """GET `path` into a file; returns the SHA-256 of what arrived."""
    digest = hashlib.sha256()
    request = _request("GET", path, headers=headers)
    with _open(request, timeout) as response, open(into, "wb") as out:
        while chunk := response.read(CHUNK):
            digest.update(chunk)
            out.write(chunk)
    return digest.hexdigest()
