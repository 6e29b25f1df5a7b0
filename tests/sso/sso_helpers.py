"""The test directory's people and groups, and small helpers of the SSO tests."""

from accounts.models import Team

PEOPLE = {
    "ts-alice": ("alice-ldap-pw", False),
    "ts-bob": ("bob-ldap-pw", False),
    "ts-carol": ("carol-ldap-pw", True),  # disabled in the directory
    "ts-dave": ("dave-ldap-pw", False),  # only in a group no mapping names
    "ts-admin": ("shadow-ldap-pw", False),  # same name as a local account
}
GROUPS = {
    "ts-devs": ["ts-alice", "ts-carol"],
    "ts-ops": ["ts-bob"],
    "ts-unmapped": ["ts-dave"],
    "ts-everyone": ["ts-alice", "ts-bob", "ts-carol", "ts-dave", "ts-admin"],
}


def team_names(user) -> set[str]:
    return set(Team.objects.filter(memberships__user=user).values_list("name", flat=True))
