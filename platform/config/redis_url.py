"""Where Redis is and how to log in and verify it: the URL and TLS options of every process."""

import ssl
from pathlib import Path
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

from config.env import secret

# Query parameters of a rediss:// URL that become TLS options instead.
TLS_QUERY_KEYS = ("ssl_ca_certs", "ssl_certfile", "ssl_keyfile", "ssl_cert_reqs")


def redis_url(data_dir: Path) -> str:
    """REDIS_URL if set, else BERTH_REDIS_HOST:PORT with the password of berth-up's Redis."""
    url = secret("REDIS_URL")
    if url:
        return url
    # secret() also reads REDIS_PASSWORD_FILE; berth-up writes the password under the data dir.
    password = secret("REDIS_PASSWORD")
    password_file = Path(data_dir) / "redis.password"
    if password is None and password_file.is_file():
        password = password_file.read_text().strip()
    host = secret("BERTH_REDIS_HOST") or "127.0.0.1"
    port = secret("BERTH_REDIS_PORT") or "6379"
    auth = f":{quote(password, safe='')}@" if password else ""
    return f"redis://{auth}{host}:{port}/0"


def split_tls(url: str) -> tuple[str, dict | None]:
    """(URL without TLS query parameters, TLS options or None): certificates always verified."""
    parts = urlsplit(url)
    if parts.scheme != "rediss":
        return url, None
    query = dict(parse_qsl(parts.query))
    options = {key: query.pop(key) for key in TLS_QUERY_KEYS if key in query}
    ca_file = secret("BERTH_REDIS_CA_FILE")
    if ca_file:
        options["ssl_ca_certs"] = ca_file
    # Kombu's default for rediss:// is CERT_NONE; Berth never talks to an unverified Redis.
    options["ssl_cert_reqs"] = ssl.CERT_REQUIRED
    return urlunsplit(parts._replace(query=urlencode(query))), options


def channel_host(url: str) -> str | dict:
    """One entry of channels_redis's `hosts`: the URL, or for TLS a dict with its options."""
    plain, tls = split_tls(url)
    if tls is None:
        return url
    return {"address": plain, **tls}
