"""`manage.py bootstrap`: the admin account and this host's registration; safe to run again."""

import os
import secrets

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from accounts.models import Membership, Team
from agent import identity
from agent.hostname import queue_for, this_host
from hosts.models import Host
from rbac.models import Role, RoleBinding
from trust import keys

ADMIN_ROLE = "admin"


class Command(BaseCommand):
    """Create the admin account (once) and register this host with its queue (once)."""

    help = (
        "Create the 'admin' account (password from BERTH_ADMIN_PASSWORD, else generated and "
        "printed once) bound to the admin role, and register this host as host.<name>."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--username", default="admin", help="admin account name (default admin)"
        )
        parser.add_argument(
            "--host-name",
            default=None,
            help="host to register (default BERTH_AGENT_HOST or hostname -s)",
        )

    def handle(self, *args, username, host_name, **options):
        host_name = host_name or this_host()
        try:
            role = Role.objects.get(name=ADMIN_ROLE)
        except Role.DoesNotExist:
            raise CommandError(
                "the built-in role 'admin' is missing: run `manage.py migrate` first"
            ) from None
        with transaction.atomic():
            created, generated = self._ensure_admin(username, role)
            if created:
                # Containers belong to a team: give a fresh install one, so the first
                # container can be created at once.
                team, _ = Team.objects.get_or_create(
                    name="default", defaults={"description": "created by bootstrap"}
                )
                Membership.objects.get_or_create(
                    team=team, user=get_user_model().objects.get(username=username)
                )
            host, created_host = Host.objects.get_or_create(
                name=host_name, defaults={"queue": queue_for(host_name)}
            )
        if generated:
            # The only time the generated password is ever shown.
            self.stdout.write(f"admin account {username!r} created; password: {generated}")
        elif created:
            self.stdout.write(
                f"admin account {username!r} created with the password from BERTH_ADMIN_PASSWORD"
            )
        else:
            self.stdout.write(f"admin account {username!r} exists")
        verb = "registered" if created_host else "already registered"
        self.stdout.write(f"host {host.name!r} {verb} (queue {host.queue})")
        # This machine's agent gets its identity here: its own key, and the control
        # plane's public key to verify every message with (the private half stays here).
        ident = identity.ensure_local(host, keys.control_public_key())
        self.stdout.write(
            f"agent identity of {host.name!r} in {identity.identity_path(host.name)} "
            f"(key {keys.key_id(ident.public_key)})"
        )

    def _ensure_admin(self, username, role):
        """Create the account and its global admin binding; return (created, generated password)."""
        User = get_user_model()
        user = User.objects.filter(username=username).first()
        created, generated = False, None
        if user is None:
            password = os.environ.get("BERTH_ADMIN_PASSWORD")
            if not password:
                password = generated = secrets.token_urlsafe(18)
            user = User.objects.create_user(username=username, password=password, is_staff=True)
            created = True
        if not RoleBinding.objects.filter(
            user=user, role=role, scope_team=None, scope_host=None
        ).exists():
            RoleBinding.objects.create(user=user, role=role)
        return created, generated
