"""`manage.py create_token USER --name NAME [--read-only] [--days N]`: print a new API token once."""

from django.core.management.base import BaseCommand, CommandError
from django.db import IntegrityError, transaction

from accounts.models import ApiToken, User
from audit.services import record_event


class Command(BaseCommand):
    """Issue an API token for a user (for automation, and for docker clients' HttpHeaders)."""

    help = (
        "Create an API token for USER and print its secret once (only its hash is stored). "
        "Use it as 'Authorization: Bearer <token>', e.g. in ~/.docker/config.json HttpHeaders."
    )

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--name", required=True, help="the token's name (unique per user)")
        parser.add_argument("--read-only", action="store_true", help="the token may only read")
        parser.add_argument("--days", type=int, default=None, help="days until it expires")

    def handle(self, *args, username, name, read_only, days, **options):
        if days is not None and not 1 <= days <= 3650:
            raise CommandError("--days must be between 1 and 3650")
        user = User.objects.filter(username=username).first()
        if user is None:
            raise CommandError(f"no user {username!r}")
        if not user.is_active:
            raise CommandError(f"user {username!r} is inactive")
        try:
            with transaction.atomic():
                token, secret = ApiToken.issue(user, name, days=days, read_only=read_only)
                record_event(
                    actor=None,
                    action="token.create",
                    outcome="allowed",
                    reason="issued by manage.py create_token (shell access to the server)",
                    object_type="token",
                    object_id=token.pk,
                    object_repr=str(token),
                    summary={
                        "user": username,
                        "read_only": read_only,
                        "expires_at": token.expires_at.isoformat(),
                    },
                )
        except IntegrityError:
            raise CommandError(f"{username} already has a token named {name!r}") from None
        self.stdout.write(secret)
