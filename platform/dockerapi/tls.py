"""TLS on the Docker API listener (2376): the server context, and client certificates as users.

With a CA (`serve_docker_api --tls-ca`), a client may present a certificate that Berth's CA
issued (`manage.py issue_docker_cert USER`); the handshake verifies it against the CA and the
listener puts its serial in the ASGI scope under SCOPE_KEY, a key no client can set (only this
listener fills it in, never from a header). auth.authenticate() then maps the serial to its
ClientCertificate row: unknown, revoked or expired is a 401; the user's account must be active.
A client without a certificate still authenticates with a token.
"""

import ssl

from cryptography import x509
from django.utils import timezone

SCOPE_KEY = "berth.docker_client_certificate"


def server_context(cert: str, key: str, ca: str | None = None) -> ssl.SSLContext:
    """The listener's TLS context; with a CA, client certificates are asked for and verified."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert, key)
    if ca:
        context.load_verify_locations(ca)
        # Optional: token clients (HttpHeaders) need no certificate; one that is presented must
        # verify against the CA or the handshake fails.
        context.verify_mode = ssl.CERT_OPTIONAL
    return context


def peer_identity(writer) -> dict | None:
    """{'serial', 'common_name'} of a verified client certificate on this connection, or None."""
    ssl_object = writer.get_extra_info("ssl_object")
    if ssl_object is None:
        return None
    der = ssl_object.getpeercert(binary_form=True)
    if not der:
        return None
    cert = x509.load_der_x509_certificate(der)
    names = cert.subject.get_attributes_for_oid(x509.oid.NameOID.COMMON_NAME)
    return {
        "serial": format(cert.serial_number, "x"),
        "common_name": names[0].value if names else "",
    }


def certificate_user(identity: dict):
    """The active user a verified client certificate maps to; (None, reason) when none."""
    from dockertls.models import ClientCertificate

    row = ClientCertificate.objects.select_related("user").filter(serial=identity["serial"]).first()
    if row is None:
        return None, "this client certificate is not one Berth issued"
    if row.revoked_at is not None:
        return None, "this client certificate was revoked"
    if row.expires_at <= timezone.now():
        return None, "this client certificate expired"
    if not row.user.is_active:
        return None, "the certificate's user is inactive"
    return row.user, ""
