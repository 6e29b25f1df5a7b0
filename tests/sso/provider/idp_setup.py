"""Create the provider's database, users, groups and Berth's client (run once per provider)."""

import os
import sys

import django

django.setup()

from django.contrib.auth.models import Group, User  # noqa: E402
from django.core.management import call_command  # noqa: E402
from oauth2_provider.models import Application  # noqa: E402

call_command("migrate", verbosity=0)
people = {
    "ts-carl": ("carl-idp-pw", ["ts-devs"]),
    "ts-oscar": ("oscar-idp-pw", ["ts-ops"]),
    "ts-ursula": ("ursula-idp-pw", ["ts-unmapped"]),
}
for name, (password, groups) in people.items():
    user = User.objects.create_user(name, email=f"{name}@idp.test", password=password)
    for group in groups:
        user.groups.add(Group.objects.get_or_create(name=group)[0])
redirects = sys.argv[1].split(",")
logouts = sys.argv[2].split(",")
Application.objects.create(
    name="berth",
    client_id=os.environ["IDP_CLIENT_ID"],
    client_secret=os.environ["IDP_CLIENT_SECRET"],
    client_type=Application.CLIENT_CONFIDENTIAL,
    authorization_grant_type=Application.GRANT_AUTHORIZATION_CODE,
    redirect_uris=" ".join(redirects),
    post_logout_redirect_uris=" ".join(logouts),
    algorithm=Application.RS256_ALGORITHM,
    skip_authorization=True,
)
print("idp ready")
