"""A client of the OCI Distribution API (Docker Registry HTTP API v2) for one registry."""

import hashlib
import json
import os
import urllib.parse
from pathlib import Path

from runtime.registry import media
from runtime.registry.auth import Authenticator
from runtime.registry.errors import (
    DigestMismatch,
    ManifestNotFound,
    RegistryAuthError,
    RegistryError,
)
from runtime.registry.transport import DEFAULT_TIMEOUT, Response, Transport

CHUNK = 1 << 20
MAX_MANIFEST = 4 * 1024 * 1024


def sha256_digest(data: bytes) -> str:
    """The "sha256:<hex>" digest of `data`."""
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _error_text(resp: Response) -> str:
    """The registry's own error message, if its body carries one."""
    try:
        data = json.loads(resp.body(64 * 1024) or b"{}")
        errors = data.get("errors") or []
        return "; ".join(f"{e.get('code', '')}: {e.get('message', '')}".strip(": ") for e in errors)
    except (ValueError, AttributeError, RegistryError):
        return ""


class RegistryClient:
    """Talks to one registry host; share one instance between download threads."""

    def __init__(
        self,
        host: str,
        *,
        username: str | None = None,
        password: str | None = None,
        insecure: bool = False,
        timeout: float = DEFAULT_TIMEOUT,
    ):
        self.host = host
        self.transport = Transport(host, insecure=insecure, timeout=timeout)
        self.auth = Authenticator(self.transport, username, password)

    # --- plumbing ---------------------------------------------------------------------------

    def _request(self, method, path, scope, headers=None, body=None, ok=(200,)) -> Response:
        """One request with authentication; 401 answered once, other statuses returned."""
        for attempt in (0, 1):
            hdrs = dict(headers or {})
            hdrs.update(self.auth.header(scope))
            if hasattr(body, "seek"):
                body.seek(0)
            resp = self.transport.request(method, path, hdrs, body)
            if resp.status != 401:
                return resp
            challenge = resp.headers.get("WWW-Authenticate")
            resp.close()
            if attempt:
                if self.auth.username is None:
                    raise RegistryAuthError(
                        f"registry {self.host} requires a login for {scope} (berth login {self.host})"
                    )
                raise self.auth.refused()
            self.auth.answer(challenge, scope)
        raise AssertionError("unreachable")

    def _fail(self, resp: Response, what: str) -> RegistryError:
        text = _error_text(resp)
        resp.close()
        detail = f": {text}" if text else ""
        if resp.status == 403:
            return RegistryAuthError(f"registry {self.host} denied {what}{detail}")
        return RegistryError(f"registry {self.host} answered {resp.status} to {what}{detail}")

    @staticmethod
    def scope(repo: str, actions: str = "pull") -> str:
        """The token scope for `actions` on `repo`."""
        return f"repository:{repo}:{actions}"

    # --- reading ----------------------------------------------------------------------------

    def ping(self) -> None:
        """Check the registry speaks API v2 (GET /v2/), authenticating if it asks."""
        resp = self._request("GET", "/v2/", "")
        resp.body(1024 * 1024)
        if resp.status != 200:
            raise self._fail(resp, "GET /v2/")

    def get_manifest(
        self, repo: str, reference: str, accept=media.ACCEPT
    ) -> tuple[bytes, str, str]:
        """Fetch a manifest or index: (body, media type, digest), the digest checked."""
        path = f"/v2/{repo}/manifests/{reference}"
        resp = self._request("GET", path, self.scope(repo), {"Accept": ", ".join(accept)})
        if resp.status == 404:
            text = _error_text(resp)
            raise ManifestNotFound(
                f"{self.host}/{repo}:{reference} not found in the registry"
                + (f" ({text})" if text else "")
            )
        if resp.status != 200:
            raise self._fail(resp, f"GET manifest {repo}:{reference}")
        body = resp.body(MAX_MANIFEST)
        digest = sha256_digest(body)
        if reference.startswith("sha256:") and digest != reference:
            raise DigestMismatch(
                f"{self.host}/{repo}: manifest asked as {reference} hashes to {digest}; refused"
            )
        mtype = media.manifest_type(body, resp.headers.get("Content-Type"))
        return body, mtype, digest

    def get_blob_bytes(self, repo: str, digest: str, limit: int = MAX_MANIFEST) -> bytes:
        """A small blob (an image config), its digest checked."""
        resp = self._request("GET", f"/v2/{repo}/blobs/{digest}", self.scope(repo))
        if resp.status == 404:
            resp.close()
            raise ManifestNotFound(f"{self.host}/{repo}: blob {digest} not found")
        if resp.status != 200:
            raise self._fail(resp, f"GET blob {digest}")
        data = resp.body(limit)
        if sha256_digest(data) != digest:
            raise DigestMismatch(f"{self.host}/{repo}: blob {digest} is corrupt (digest mismatch)")
        return data

    def download_blob(self, repo: str, digest: str, dest: Path, size=None, progress=None) -> int:
        """Stream a blob into `dest`, checking its digest; nothing is left at `dest` on error."""
        resp = self._request("GET", f"/v2/{repo}/blobs/{digest}", self.scope(repo))
        if resp.status == 404:
            resp.close()
            raise ManifestNotFound(f"{self.host}/{repo}: blob {digest} not found")
        if resp.status != 200:
            raise self._fail(resp, f"GET blob {digest}")
        hasher = hashlib.sha256()
        done = 0
        tmp = dest.with_name(dest.name + ".part")
        try:
            with open(tmp, "wb") as out:
                while True:
                    chunk = resp.read(CHUNK)
                    if not chunk:
                        break
                    hasher.update(chunk)
                    out.write(chunk)
                    done += len(chunk)
                    if size is not None and done > size:
                        raise DigestMismatch(
                            f"{self.host}/{repo}: blob {digest} is longer than its {size} bytes"
                        )
                    if progress:
                        progress(done)
            got = "sha256:" + hasher.hexdigest()
            if got != digest:
                raise DigestMismatch(
                    f"{self.host}/{repo}: blob {digest} is corrupt: it hashes to {got}; refused"
                )
            os.replace(tmp, dest)
        except BaseException:
            resp.close()
            tmp.unlink(missing_ok=True)
            raise
        return done

    def blob_exists(self, repo: str, digest: str, actions: str = "pull") -> bool:
        """HEAD the blob: does the registry hold it in `repo`?"""
        resp = self._request("HEAD", f"/v2/{repo}/blobs/{digest}", self.scope(repo, actions))
        resp.close()
        if resp.status == 200:
            return True
        if resp.status == 404:
            return False
        raise self._fail(resp, f"HEAD blob {digest}")

    def tags(self, repo: str) -> list[str]:
        """Every tag of `repo` (all pages)."""
        out: list[str] = []
        path = f"/v2/{repo}/tags/list?n=1000"
        while path:
            resp = self._request("GET", path, self.scope(repo))
            if resp.status == 404:
                resp.close()
                raise ManifestNotFound(f"repository {self.host}/{repo} not found")
            if resp.status != 200:
                raise self._fail(resp, f"GET tags of {repo}")
            out.extend((json.loads(resp.body()) or {}).get("tags") or [])
            path = _next_link(resp)
        return out

    def catalog(self, limit: int = 10000) -> list[str]:
        """The registry's repositories (all pages, up to `limit`)."""
        out: list[str] = []
        path = "/v2/_catalog?n=1000"
        while path and len(out) < limit:
            resp = self._request("GET", path, "registry:catalog:*")
            if resp.status != 200:
                raise self._fail(resp, "GET catalog")
            out.extend((json.loads(resp.body()) or {}).get("repositories") or [])
            path = _next_link(resp)
        return out[:limit]

    # --- writing ----------------------------------------------------------------------------

    def upload_blob(
        self, repo: str, digest: str, path: Path, chunk_size: int | None = None
    ) -> None:
        """Upload a blob file: one PUT, or PATCH chunks of `chunk_size` then a closing PUT."""
        scope = self.scope(repo, "pull,push")
        resp = self._request(
            "POST", f"/v2/{repo}/blobs/uploads/", scope, {"Content-Length": "0"}, b""
        )
        resp.body(64 * 1024)
        if resp.status != 202:
            raise self._fail(resp, f"POST upload to {repo}")
        location = resp.headers.get("Location")
        if not location:
            raise RegistryError(f"registry {self.host} started an upload without a Location")
        size = path.stat().st_size
        with open(path, "rb") as src:
            if chunk_size:
                offset = 0
                while offset < size:
                    data = src.read(chunk_size)
                    end = offset + len(data) - 1
                    resp = self._request(
                        "PATCH",
                        location,
                        scope,
                        {
                            "Content-Type": "application/octet-stream",
                            "Content-Length": str(len(data)),
                            "Content-Range": f"{offset}-{end}",
                        },
                        data,
                    )
                    resp.body(64 * 1024)
                    if resp.status != 202:
                        raise self._fail(resp, f"PATCH blob {digest}")
                    location = resp.headers.get("Location") or location
                    offset += len(data)
                resp = self._request(
                    "PUT", _with_digest(location, digest), scope, {"Content-Length": "0"}, b""
                )
            else:
                resp = self._request(
                    "PUT",
                    _with_digest(location, digest),
                    scope,
                    {"Content-Type": "application/octet-stream", "Content-Length": str(size)},
                    src,
                )
        resp.body(64 * 1024)
        if resp.status != 201:
            raise self._fail(resp, f"PUT blob {digest}")

    def put_manifest(self, repo: str, reference: str, body: bytes, media_type: str) -> str:
        """Store a manifest under a tag (or its digest); returns its digest."""
        resp = self._request(
            "PUT",
            f"/v2/{repo}/manifests/{reference}",
            self.scope(repo, "pull,push"),
            {"Content-Type": media_type, "Content-Length": str(len(body))},
            body,
        )
        resp.body(64 * 1024)
        if resp.status != 201:
            raise self._fail(resp, f"PUT manifest {repo}:{reference}")
        return sha256_digest(body)


def _with_digest(location: str, digest: str) -> str:
    sep = "&" if "?" in location else "?"
    return f"{location}{sep}digest={urllib.parse.quote(digest)}"


def _next_link(resp: Response) -> str | None:
    """The next page's path from an RFC 5988 Link header."""
    link = resp.headers.get("Link")
    if not link or 'rel="next"' not in link:
        return None
    start, end = link.find("<"), link.find(">")
    return link[start + 1 : end] if 0 <= start < end else None
