"""Berth's Docker API certificate authority: the CA, the listener's certificate, client ones.

Files live in one directory (settings.DOCKER_TLS_DIR, default $BERTH_DATA_DIR/docker-tls):
ca.pem / ca-key.pem, server-cert.pem / server-key.pem. Private keys are written mode 0600.
Client certificates are handed to the user (ca.pem, cert.pem, key.pem, as the docker CLI reads
them from DOCKER_CERT_PATH) and recorded as ClientCertificate rows so they can be revoked.
"""

import datetime
import hashlib
import ipaddress
import os
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CA_DAYS = 3650
SERVER_DAYS = 825


def tls_dir() -> Path:
    """Where the CA and the listener's certificate are kept."""
    from django.conf import settings

    return Path(getattr(settings, "DOCKER_TLS_DIR", None) or settings.DATA_DIR / "docker-tls")


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _write(path: Path, data: bytes, private: bool = False) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600 if private else 0o644)
    with os.fdopen(fd, "wb") as out:
        out.write(data)


def _key_pem(key) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Berth"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def ensure_ca(directory: Path | None = None):
    """(certificate, key) of the CA, made on first use."""
    directory = directory or tls_dir()
    cert_path, key_path = directory / "ca.pem", directory / "ca-key.pem"
    if cert_path.exists() and key_path.exists():
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
        return cert, key
    key = ec.generate_private_key(ec.SECP256R1())
    name = _name("Berth Docker API CA")
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(_now() - datetime.timedelta(minutes=5))
        .not_valid_after(_now() + datetime.timedelta(days=CA_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )  # fmt: skip
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    _write(key_path, _key_pem(key), private=True)
    _write(cert_path, cert.public_bytes(serialization.Encoding.PEM))
    return cert, key


def _leaf(common_name: str, days: int, usage, sans=None, directory: Path | None = None):
    ca_cert, ca_key = ensure_ca(directory)
    key = ec.generate_private_key(ec.SECP256R1())
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(_now() - datetime.timedelta(minutes=5))
        .not_valid_after(_now() + datetime.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
    )
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    cert = builder.sign(ca_key, hashes.SHA256())
    return cert, key, ca_cert


def issue_server(hostnames=("localhost",), addresses=("127.0.0.1", "::1"), directory=None):
    """The listener's certificate (server-cert.pem, server-key.pem) for these names."""
    directory = directory or tls_dir()
    sans = [x509.DNSName(h) for h in hostnames] + [
        x509.IPAddress(ipaddress.ip_address(a)) for a in addresses
    ]
    cert, key, _ = _leaf(
        hostnames[0] if hostnames else addresses[0], SERVER_DAYS,
        ExtendedKeyUsageOID.SERVER_AUTH, sans, directory,
    )  # fmt: skip
    _write(directory / "server-key.pem", _key_pem(key), private=True)
    _write(directory / "server-cert.pem", cert.public_bytes(serialization.Encoding.PEM))
    return directory / "server-cert.pem", directory / "server-key.pem"


def serial_hex(cert) -> str:
    """The form ClientCertificate.serial keeps."""
    return format(cert.serial_number, "x")


def fingerprint(cert) -> str:
    """SHA-256 of the DER certificate, hex."""
    return hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest()


def issue_client(user, out: Path, days: int, directory=None):
    """A client certificate for `user` in `out` (ca.pem, cert.pem, key.pem) and its row."""
    from dockertls.models import ClientCertificate

    cert, key, ca_cert = _leaf(
        user.username, days, ExtendedKeyUsageOID.CLIENT_AUTH, directory=directory
    )
    row = ClientCertificate.objects.create(
        user=user,
        serial=serial_hex(cert),
        common_name=user.username,
        fingerprint=fingerprint(cert),
        expires_at=cert.not_valid_after_utc,
    )
    _write(out / "key.pem", _key_pem(key), private=True)
    _write(out / "cert.pem", cert.public_bytes(serialization.Encoding.PEM))
    _write(out / "ca.pem", ca_cert.public_bytes(serialization.Encoding.PEM))
    return row
