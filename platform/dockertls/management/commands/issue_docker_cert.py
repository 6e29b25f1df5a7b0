"""`manage.py issue_docker_cert USER --out DIR [--days N]`, `--server`, `--revoke SERIAL`."""

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.utils import timezone

from accounts.models import User
from audit.services import record_event
from dockertls import issuing
from dockertls.models import ClientCertificate


class Command(BaseCommand):
    """Issue (or revoke) the TLS certificates of the Docker API listener and its users."""

    help = (
        "Issue a Docker API client certificate for USER into --out (ca.pem, cert.pem, key.pem: "
        "DOCKER_TLS_VERIFY=1 DOCKER_CERT_PATH=DIR DOCKER_HOST=tcp://HOST:2376), or the "
        "listener's own certificate with --server (with USER: both), or revoke one with --revoke SERIAL. The CA "
        "is made on first use in $BERTH_DATA_DIR/docker-tls."
    )

    def add_arguments(self, parser):
        parser.add_argument("username", nargs="?")
        parser.add_argument("--out", help="directory for ca.pem, cert.pem, key.pem")
        parser.add_argument("--days", type=int, default=365, help="days until it expires")
        parser.add_argument("--server", action="store_true", help="the listener's certificate")
        parser.add_argument("--hostname", action="append", default=[], help="server name (SAN)")
        parser.add_argument("--ip", action="append", default=[], help="server address (SAN)")
        parser.add_argument("--revoke", metavar="SERIAL", help="revoke a client certificate")

    def handle(self, *args, username, out, days, server, hostname, ip, revoke, **options):
        if server:
            cert, key = issuing.issue_server(
                tuple(hostname) or ("localhost",), tuple(ip) or ("127.0.0.1", "::1")
            )
            self.stdout.write(
                f"server certificate {cert}\nserver key {key}\nCA {cert.parent}/ca.pem"
            )
            if not username:  # with USER too: the listener's certificate and the user's
                return
        if revoke:
            return self._revoke(revoke)
        if not username or not out:
            raise CommandError("give USER and --out DIR (or --server, or --revoke SERIAL)")
        if not 1 <= days <= 3650:
            raise CommandError("--days must be between 1 and 3650")
        user = User.objects.filter(username=username).first()
        if user is None:
            raise CommandError(f"no user {username!r}")
        if not user.is_active:
            raise CommandError(f"user {username!r} is inactive")
        with transaction.atomic():
            row = issuing.issue_client(user, Path(out), days)
            record_event(
                actor=None,
                action="docker_certificate.issue",
                outcome="allowed",
                reason="issued by manage.py issue_docker_cert (shell access to the server)",
                object_type="docker_certificate",
                object_id=row.serial,
                summary={"user": user.username, "expires_at": row.expires_at.isoformat()},
            )
        self.stdout.write(
            f"client certificate {row.serial} for {user.username} in {out}\n"
            f"DOCKER_TLS_VERIFY=1 DOCKER_CERT_PATH={out} DOCKER_HOST=tcp://127.0.0.1:2376"
        )

    def _revoke(self, serial: str) -> None:
        row = ClientCertificate.objects.filter(serial=serial.lower()).first()
        if row is None:
            raise CommandError(f"no certificate with serial {serial!r}")
        if row.revoked_at is None:
            row.revoked_at = timezone.now()
            row.save(update_fields=["revoked_at"])
            record_event(
                actor=None,
                action="docker_certificate.revoke",
                outcome="allowed",
                reason="revoked by manage.py issue_docker_cert --revoke",
                object_type="docker_certificate",
                object_id=row.serial,
                summary={"user": row.user.username},
            )
        self.stdout.write(f"certificate {row.serial} of {row.user.username} revoked")
