"""Single sign-on tests: a real slapd and a real OIDC provider (django-oauth-toolkit in its own
process), both on loopback, started here and stopped by PID; prefix `ts`."""

import shutil

import pytest
from django.test import Client

from directory import oidc
from directory.models import GroupMapping
from rbac.models import Role
from tests.fixtures_platform import Area, teams, users
from tests.sso.provider_process import Provider
from tests.sso.slapd import SLAPD, Slapd
from tests.sso.sso_helpers import GROUPS, PEOPLE

__all__ = ["teams", "users"]  # fixtures, found by pytest here


@pytest.fixture
def area():
    """Prefix `ts`; local accounts ts-<role>."""
    return Area("ts", lambda name: f"ts-{name}", lambda name: f"{name}-password-1")


@pytest.fixture(scope="session")
def slapd():
    """One directory for the session; tests that change groups put them back."""
    if not shutil.which(SLAPD):
        pytest.fail("slapd is not installed (scripts/lib.sh installs it)")
    server = Slapd(PEOPLE, GROUPS).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def ldap_on(settings, slapd):
    """Berth pointed at the test directory."""
    settings.BERTH_LDAP = slapd.settings()
    return slapd


@pytest.fixture
def mappings(db, teams):
    """LDAP and OIDC: devs -> alpha as developer, ops -> beta as viewer."""
    developer, viewer = Role.objects.get(name="developer"), Role.objects.get(name="viewer")
    rows = []
    for source in ("ldap", "oidc"):
        rows.append(
            GroupMapping.objects.create(
                source=source, group="ts-devs", team=teams["alpha"], role=developer
            )
        )
        rows.append(
            GroupMapping.objects.create(
                source=source, group="ts-ops", team=teams["beta"], role=viewer
            )
        )
    return rows


@pytest.fixture(scope="session")
def provider(tmp_path_factory):
    """The OIDC provider process (django-oauth-toolkit), its users and its client."""
    server = Provider(tmp_path_factory.mktemp("ts-oidc")).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def oidc_on(settings, provider):
    """Berth configured as the provider's client; the provider honest again afterwards."""
    settings.BERTH_OIDC = provider.berth_settings()
    oidc.forget_clients()
    provider.tamper("")
    yield provider
    provider.tamper("")
    oidc.forget_clients()


@pytest.fixture
def client():
    return Client()
