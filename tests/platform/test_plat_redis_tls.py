"""rediss://: Celery's broker and results and the channels layer go through a TLS-only Redis."""

import datetime
import ipaddress
import json
import os
import shutil
import ssl
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tests.redis_server import RedisServer, answers

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(
    not shutil.which("redis-server"), reason="redis-server is not installed"
)

# Run in a child process configured only by the environment, as every Berth process is.
PROBE = """
import asyncio, json
import django
django.setup()
from channels_redis.core import RedisChannelLayer
from django.conf import settings
from config.celery import app
from config.settings import base  # the Redis channel layer (test settings keep one in memory)

def attempt(step):
    try:
        return {"ok": step()}
    except Exception as exc:
        return {"error": f"{type(exc).__name__}: {exc}"}

def broker():
    with app.connection_for_write() as conn:
        conn.ensure_connection(max_retries=1, interval_start=0, interval_step=0, timeout=3)
        queue = conn.SimpleQueue("berth-tls-probe")
        queue.put({"hello": "broker"})
        message = queue.get(timeout=5)
        message.ack()
        queue.close()
        return message.payload

def results():
    app.backend.store_result("berth-tls-probe", {"hello": "results"}, "SUCCESS")
    return app.AsyncResult("berth-tls-probe").get(timeout=5)

def channels():
    layer = RedisChannelLayer(**base.CHANNEL_LAYERS["default"]["CONFIG"])
    async def roundtrip():
        name = await layer.new_channel()
        await layer.send(name, {"type": "probe", "hello": "channels"})
        return await asyncio.wait_for(layer.receive(name), 5)
    return asyncio.run(roundtrip())

print(json.dumps({
    "cert_reqs": [int(app.conf.broker_use_ssl["ssl_cert_reqs"]),
                  int(app.conf.redis_backend_use_ssl["ssl_cert_reqs"])],
    "broker": attempt(broker),
    "results": attempt(results),
    "channels": attempt(channels),
}))
"""


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _certificate(subject, issuer, public_key, signing_key, extensions):
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
    )
    for extension, critical in extensions:
        builder = builder.add_extension(extension, critical=critical)
    return builder.sign(signing_key, hashes.SHA256())


def _write(path: Path, data: bytes) -> str:
    path.write_bytes(data)
    path.chmod(0o600)
    return str(path)


@pytest.fixture(scope="module")
def certificates(tmp_path_factory):
    """A throwaway CA and a server certificate for 127.0.0.1 and localhost, as PEM files."""
    out = tmp_path_factory.mktemp("tls")
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_ski = x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key())
    ca = _certificate(
        _name("Berth test CA"),
        _name("Berth test CA"),
        ca_key.public_key(),
        ca_key,
        [
            (x509.BasicConstraints(ca=True, path_length=0), True),
            (x509.KeyUsage(False, False, False, False, False, True, True, False, False), True),
            (ca_ski, False),
        ],
    )
    key = ec.generate_private_key(ec.SECP256R1())
    names = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    server = _certificate(
        _name("localhost"),
        ca.subject,
        key.public_key(),
        ca_key,
        [
            (x509.BasicConstraints(ca=False, path_length=None), True),
            (x509.SubjectAlternativeName(names), False),
            (x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), False),
            (x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False),
            (x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), False),
        ],
    )
    pem = serialization.Encoding.PEM
    return {
        "ca": _write(out / "ca.pem", ca.public_bytes(pem)),
        "cert": _write(out / "server.pem", server.public_bytes(pem)),
        "key": _write(
            out / "server.key",
            key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()),
        ),
    }


@pytest.fixture(scope="module")
def tls_redis(tmp_path_factory, certificates):
    """redis-server speaking only TLS (no plain port) on a free loopback port, with a password."""
    server = RedisServer(tmp_path_factory.mktemp("redis-tls"))
    server.url = server.url.replace("redis://", "rediss://")
    tls = {
        "port": "0",
        "tls-port": str(server.port),
        "tls-cert-file": f'"{certificates["cert"]}"',
        "tls-key-file": f'"{certificates["key"]}"',
        "tls-ca-cert-file": f'"{certificates["ca"]}"',
        "tls-auth-clients": "no",
    }
    context = ssl.create_default_context(cafile=certificates["ca"])
    server.start(tls, ready=lambda: answers(server.url, context))
    try:
        yield server
    finally:
        server.stop()


def probe(env: dict) -> dict:
    """Run PROBE with Berth's test settings, configured by `env` only."""
    names = ("REDIS_URL", "REDIS_PASSWORD", "REDIS_PASSWORD_FILE", "BERTH_REDIS_CA_FILE")
    base = {k: v for k, v in os.environ.items() if k not in names}
    base.update(DJANGO_SETTINGS_MODULE="config.settings.test", PYTHONPATH="platform:.")
    done = subprocess.run(
        [sys.executable, "-c", PROBE],
        env=base | env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_redis_server_speaks_tls_only(tls_redis, certificates):
    plain = tls_redis.url.replace("rediss://", "redis://")
    assert not answers(plain)
    assert answers(tls_redis.url, ssl.create_default_context(cafile=certificates["ca"]))


@pytest.mark.parametrize("ca_from", ["environment", "url"])
def test_berth_sends_and_receives_through_tls(tls_redis, certificates, ca_from):
    if ca_from == "environment":
        env = {"REDIS_URL": tls_redis.url, "BERTH_REDIS_CA_FILE": certificates["ca"]}
    else:
        env = {"REDIS_URL": f"{tls_redis.url}?ssl_ca_certs={certificates['ca']}"}
    result = probe(env)
    assert result["cert_reqs"] == [ssl.CERT_REQUIRED, ssl.CERT_REQUIRED]
    assert result["broker"] == {"ok": {"hello": "broker"}}
    assert result["results"] == {"ok": {"hello": "results"}}
    assert result["channels"] == {"ok": {"type": "probe", "hello": "channels"}}


def test_a_client_without_the_ca_is_refused(tls_redis):
    result = probe({"REDIS_URL": tls_redis.url})
    for step in ("broker", "results", "channels"):
        assert "error" in result[step], result
        assert "CERTIFICATE_VERIFY_FAILED" in result[step]["error"], result[step]
    password = tls_redis.password
    assert all(password not in result[step]["error"] for step in ("broker", "results", "channels"))
