"""Registry authentication: parse WWW-Authenticate, fetch bearer tokens, send basic auth."""

import base64
import json
import re
import threading
import urllib.parse

from runtime.registry.errors import RegistryAuthError, RegistryError
from runtime.registry.transport import Transport

_PARAM_RE = re.compile(r'(\w+)=(?:"((?:[^"\\]|\\.)*)"|([^\s,]+))')


def parse_challenge(header: str) -> tuple[str, dict]:
    """Split 'Bearer realm="...",service="..."' into ("bearer", {"realm": ..., ...})."""
    scheme, _, rest = header.strip().partition(" ")
    params = {}
    for key, quoted, bare in _PARAM_RE.findall(rest):
        params[key.lower()] = quoted.replace('\\"', '"') if quoted else bare
    return scheme.lower(), params


def basic_header(username: str, password: str) -> str:
    """The value of an Authorization header for HTTP basic authentication."""
    raw = f"{username}:{password}".encode()
    return "Basic " + base64.b64encode(raw).decode()


class Authenticator:
    """Holds credentials for one registry and the tokens it has been given, per scope."""

    def __init__(self, transport: Transport, username=None, password=None):
        self.transport = transport
        self.username = username
        self.password = password
        self._headers: dict[str, str] = {}  # scope -> Authorization value
        self._scheme: str | None = None
        self._lock = threading.Lock()

    def header(self, scope: str) -> dict:
        """The Authorization header to send for `scope`, if one is known yet."""
        with self._lock:
            if self._scheme == "basic" and self.username is not None:
                return {"Authorization": basic_header(self.username, self.password or "")}
            value = self._headers.get(scope)
        return {"Authorization": value} if value else {}

    def answer(self, challenge: str | None, scope: str) -> None:
        """React to a 401 carrying `challenge`: fetch a token or switch to basic auth."""
        if not challenge:
            raise RegistryAuthError(f"registry {self.transport.host} refused the request (401)")
        scheme, params = parse_challenge(challenge)
        if scheme == "basic":
            if self.username is None:
                raise RegistryAuthError(
                    f"registry {self.transport.host} requires a login (berth login {self.transport.host})"
                )
            with self._lock:
                if self._scheme == "basic":
                    raise self.refused()
                self._scheme = "basic"
            return
        if scheme != "bearer" or "realm" not in params:
            raise RegistryAuthError(
                f"registry {self.transport.host}: unsupported authentication {challenge!r}"
            )
        # The registry names the scope it wants; ask for what it named, else ours.
        want = params.get("scope") or scope
        token = self._fetch_token(params["realm"], params.get("service"), want)
        with self._lock:
            self._scheme = "bearer"
            self._headers[scope] = f"Bearer {token}"

    def refused(self) -> RegistryAuthError:
        """The error for credentials the registry or its token server refused."""
        who = f" for user {self.username!r}" if self.username else ""
        return RegistryAuthError(
            f"registry {self.transport.host} refused the credentials{who} (wrong user name or password?)"
        )

    def _fetch_token(self, realm: str, service: str | None, scope: str) -> str:
        query = []
        if service:
            query.append(("service", service))
        for item in scope.split(" "):
            if item:
                query.append(("scope", item))
        parts = urllib.parse.urlsplit(realm)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise RegistryAuthError(f"registry {self.transport.host}: bad token realm {realm!r}")
        sep = "&" if parts.query else "?"
        url = realm + (sep + urllib.parse.urlencode(query) if query else "")
        headers = {"Accept": "application/json"}
        if self.username is not None:
            headers["Authorization"] = basic_header(self.username, self.password or "")
        token_transport = Transport(
            parts.netloc, insecure=self.transport.insecure, scheme=parts.scheme
        )
        resp = token_transport.request("GET", url, headers)
        body = resp.body(1024 * 1024)
        if resp.status in (401, 403):
            raise self.refused()
        if resp.status != 200:
            raise RegistryError(f"token server {parts.netloc} answered {resp.status} for {scope}")
        try:
            data = json.loads(body)
            token = data.get("token") or data.get("access_token")
        except (ValueError, AttributeError) as exc:
            raise RegistryError(f"token server {parts.netloc} sent no JSON") from exc
        if not token or not isinstance(token, str):
            raise RegistryError(f"token server {parts.netloc} sent no token")
        return token
