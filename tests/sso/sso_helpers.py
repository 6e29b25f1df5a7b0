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


def stop_process(proc, log=None) -> None:
    """Stop a server a test started, by its PID: SIGTERM, then SIGKILL if it lingers; close its log."""
    import os
    import signal
    import subprocess

    if proc is not None and proc.poll() is None:
        os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(5)
    if log is not None:
        log.close()
