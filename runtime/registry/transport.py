"""HTTP(S) connections to one registry host: TLS policy, keep-alive per thread, redirects."""

import http.client
import ipaddress
import ssl
import threading
import urllib.parse

from runtime.registry.errors import RegistryError

DEFAULT_TIMEOUT = 60.0
MAX_REDIRECTS = 5


def hostname(host: str) -> str:
    """The host part of "host[:port]" (brackets of an IPv6 literal removed)."""
    if host.startswith("["):
        return host[1 : host.index("]")]
    return host.split(":", 1)[0] if host.count(":") == 1 else host


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and localhost: Docker reaches those over plain HTTP."""
    name = hostname(host)
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


class Response:
    """A response whose body is read whole (`body`) or streamed (`read`)."""

    def __init__(self, raw: http.client.HTTPResponse, url: str, drop=None):
        self.raw = raw
        self.status = raw.status
        self.headers = raw.headers
        self.url = url
        self._drop = drop

    def read(self, n: int = -1) -> bytes:
        """Read up to n bytes of the body (all of it when n < 0)."""
        return self.raw.read() if n < 0 else self.raw.read(n)

    def body(self, limit: int = 16 * 1024 * 1024) -> bytes:
        """The whole body; refuses bodies over `limit` so a bad server cannot fill memory."""
        data = self.raw.read(limit + 1)
        if len(data) > limit:
            self.close()
            raise RegistryError(f"{self.url}: response larger than {limit} bytes")
        return data

    def close(self) -> None:
        """Finish with the response, keeping the connection usable when that is cheap."""
        if self.raw.isclosed():
            return
        # Unread bytes would be taken for the next response on a kept-alive socket:
        # read a small rest, or give the socket up.
        if self.raw.length is not None and self.raw.length <= 64 * 1024:
            try:
                self.raw.read()
                return
            except (OSError, http.client.HTTPException):
                pass
        self.raw.close()
        if self._drop is not None:
            self._drop()


class Transport:
    """Connections to one registry host; safe to share between threads (one socket each)."""

    def __init__(
        self, host: str, *, insecure: bool = False, timeout: float = DEFAULT_TIMEOUT, scheme=None
    ):
        self.host = host
        self.insecure = insecure or is_loopback(host)
        self.timeout = timeout
        if scheme == "http" and not self.insecure:
            raise RegistryError(f"{host}: plain HTTP is allowed only for insecure registries")
        self._scheme: str | None = scheme
        self._local = threading.local()
        self._lock = threading.Lock()

    # --- TLS policy -------------------------------------------------------------------------

    def _ssl_context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context()
        if self.insecure:
            # An admin marked this registry insecure (or it is on loopback): encrypt, do not verify.
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        return ctx

    def _connect(self, scheme: str, host: str) -> http.client.HTTPConnection:
        if scheme == "https":
            return http.client.HTTPSConnection(
                host, timeout=self.timeout, context=self._ssl_context()
            )
        return http.client.HTTPConnection(host, timeout=self.timeout)

    @property
    def scheme(self) -> str:
        """https, or http when the registry is insecure and does not speak TLS."""
        with self._lock:
            if self._scheme is None:
                self._scheme = self._probe_scheme()
            return self._scheme

    def _probe_scheme(self) -> str:
        if not self.insecure:
            return "https"
        # Like Docker: an insecure registry is tried over TLS first, then over plain HTTP.
        conn = self._connect("https", self.host)
        try:
            conn.request("GET", "/v2/")
            conn.getresponse().read()
            return "https"
        except (ssl.SSLError, ConnectionResetError, http.client.HTTPException):
            return "http"
        except OSError as exc:
            raise RegistryError(f"registry {self.host} cannot be reached: {_reason(exc)}") from exc
        finally:
            conn.close()

    def base_url(self) -> str:
        """The registry's root URL."""
        return f"{self.scheme}://{self.host}"

    # --- requests ---------------------------------------------------------------------------

    def _conn(self) -> http.client.HTTPConnection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._connect(self.scheme, self.host)
            self._local.conn = conn
        return conn

    def _drop_conn(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    def request(self, method, url, headers=None, body=None, *, follow=True) -> Response:
        """Send one request; `url` is a path on this host or an absolute URL (redirects)."""
        headers = dict(headers or {})
        for _ in range(MAX_REDIRECTS + 1):
            resp = self._send(method, url, headers, body)
            if follow and resp.status in (301, 302, 303, 307, 308) and method in ("GET", "HEAD"):
                location = resp.headers.get("Location")
                resp.close()
                if not location:
                    raise RegistryError(f"{self.host}: redirect without a Location")
                new = urllib.parse.urljoin(self._absolute(url), location)
                if (
                    urllib.parse.urlsplit(new).netloc
                    != urllib.parse.urlsplit(self._absolute(url)).netloc
                ):
                    # Blob storage elsewhere (S3, a CDN) must not receive the registry's token.
                    headers.pop("Authorization", None)
                url = new
                continue
            return resp
        raise RegistryError(f"{self.host}: too many redirects for {url}")

    def _absolute(self, url: str) -> str:
        return url if "://" in url else self.base_url() + url

    def _send(self, method, url, headers, body) -> Response:
        absolute = self._absolute(url)
        parts = urllib.parse.urlsplit(absolute)
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        foreign = parts.netloc != self.host or parts.scheme != self.scheme
        for attempt in (0, 1):
            if foreign:
                if parts.scheme == "http" and not is_loopback(parts.netloc) and not self.insecure:
                    raise RegistryError(f"{self.host}: refusing plain HTTP to {parts.netloc}")
                conn = self._connect(parts.scheme, parts.netloc)
            else:
                conn = self._conn()
            try:
                conn.request(method, path, body=body, headers=headers)
                raw = conn.getresponse()
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError) as exc:
                # A kept-alive socket the server closed: retry once on a fresh one.
                self._drop_conn()
                if attempt or foreign or (body is not None and not isinstance(body, bytes)):
                    raise RegistryError(f"registry {parts.netloc} closed the connection") from exc
                continue
            except TimeoutError as exc:
                self._drop_conn()
                raise RegistryError(f"registry {parts.netloc} timed out ({method} {path})") from exc
            except OSError as exc:
                self._drop_conn()
                raise RegistryError(
                    f"registry {parts.netloc} cannot be reached: {_reason(exc)}"
                ) from exc
            return Response(raw, absolute, conn.close if foreign else self._drop_conn)
        raise AssertionError("unreachable")


def _reason(exc: OSError) -> str:
    return exc.strerror or str(exc) or type(exc).__name__
