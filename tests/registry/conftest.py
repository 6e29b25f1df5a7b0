"""Fixtures: real `docker-registry` servers on 127.0.0.1 (open, token, basic auth, TLS)."""

import datetime
import shutil
import subprocess

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from registry_helpers import (
    REGISTRY_BIN,
    TEST_PASSWORD,
    TEST_USER,
    RegistryServer,
    TokenServer,
    cleanup_runtime,
)


@pytest.fixture(scope="session")
def registry(tmp_path_factory):
    """An open registry on 127.0.0.1, for this test session."""
    if REGISTRY_BIN is None:
        pytest.skip("docker-registry is not installed")
    server = RegistryServer(tmp_path_factory.mktemp("registry"))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def token_registry(tmp_path_factory):
    """A registry that wants bearer tokens from a token server on 127.0.0.1."""
    if REGISTRY_BIN is None:
        pytest.skip("docker-registry is not installed")
    workdir = tmp_path_factory.mktemp("token-registry")
    tokens = TokenServer(workdir)
    try:
        server = RegistryServer(workdir, auth=tokens.registry_auth())
    except BaseException:
        tokens.stop()
        raise
    server.tokens = tokens
    yield server
    server.stop()
    tokens.stop()


@pytest.fixture(scope="session")
def basic_registry(tmp_path_factory):
    """A registry with htpasswd (HTTP basic) authentication."""
    htpasswd = shutil.which("htpasswd")
    if REGISTRY_BIN is None or htpasswd is None:
        pytest.skip("apt-get install docker-registry apache2-utils")
    workdir = tmp_path_factory.mktemp("basic-registry")
    users = workdir / "htpasswd"
    line = subprocess.run(
        [htpasswd, "-Bbn", TEST_USER, TEST_PASSWORD], capture_output=True, text=True, check=True
    ).stdout
    users.write_text(line.strip() + "\n")
    server = RegistryServer(
        workdir, auth={"realm": "berth-test", "path": str(users)}, auth_kind="htpasswd"
    )
    yield server
    server.stop()


@pytest.fixture(scope="session")
def tls_registry(tmp_path_factory):
    """A registry speaking HTTPS with a self-signed certificate for 127.0.0.1."""
    import ipaddress

    if REGISTRY_BIN is None:
        pytest.skip("docker-registry is not installed")
    workdir = tmp_path_factory.mktemp("tls-registry")
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = workdir / "cert.pem", workdir / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )
    server = RegistryServer(workdir, tls=(cert_path, key_path))
    yield server
    server.stop()


@pytest.fixture
def runtime_factory(tmp_path):
    """Make runtimes under tmp_path with a given prefix, all cleaned up afterwards."""
    from runtime.api import Runtime
    from runtime.config import RuntimeConfig

    made = []

    def make(prefix: str, config=None):
        config = config or RuntimeConfig(
            root=tmp_path / "state", run_root=tmp_path / "run", prefix=prefix
        )
        rt = Runtime(config)
        made.append(rt)
        return rt

    yield make
    for rt in made:
        cleanup_runtime(rt)
