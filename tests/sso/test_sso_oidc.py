"""OIDC sign-in against a real provider (django-oauth-toolkit in its own process): the code flow
with PKCE, the mapping from the groups claim, and every refusal audited with nobody signed in."""

import logging
from urllib.parse import parse_qs, urlparse

import pytest

from accounts.models import User
from audit.models import AuditEvent
from directory.models import DirectoryIdentity
from tests.sso.sso_helpers import team_names

pytestmark = pytest.mark.django_db


def start(client):
    """Berth's /sso/oidc/login/ -> the provider's authorization URL."""
    response = client.get("/sso/oidc/login/")
    assert response.status_code == 302, response.content[:300]
    return response["Location"]


def callback(client, provider, username):
    url = start(client)
    answer = provider.session(username).get(url, allow_redirects=False, timeout=10)
    assert answer.status_code == 302, answer.text[:500]
    location = urlparse(answer.headers["Location"])
    assert location.path == "/sso/oidc/callback/", location
    return client.get(f"{location.path}?{location.query}")


def signed_in(client) -> bool:
    return client.get("/").status_code == 200


def denied_reasons(username=""):
    events = AuditEvent.objects.filter(action="auth.login", outcome="denied")
    if username:
        events = events.filter(object_repr=username)
    return [e.reason for e in events]


def test_authorization_request_uses_pkce_state_and_nonce(client, oidc_on):
    query = parse_qs(urlparse(start(client)).query)
    assert query["response_type"] == ["code"]
    assert query["code_challenge_method"] == ["S256"]
    assert len(query["code_challenge"][0]) >= 43
    assert query["state"][0] and query["nonce"][0]
    assert "openid" in query["scope"][0].split()


def test_sign_in_maps_the_groups_claim_and_never_logs_tokens(
    client, oidc_on, mappings, teams, caplog
):
    caplog.set_level(logging.DEBUG)
    response = callback(client, oidc_on, "ts-carl")
    assert response.status_code == 302 and response["Location"] == "/", response.content[:300]
    assert signed_in(client)
    carl = User.objects.get(username="ts-carl")
    assert not carl.has_usable_password()
    assert team_names(carl) == {teams["alpha"].name}
    identity = DirectoryIdentity.objects.get(user=carl)
    assert identity.source == "oidc" and identity.subject.startswith(oidc_on.issuer + " ")
    allowed = AuditEvent.objects.filter(action="auth.login", outcome="allowed", actor="ts-carl")
    assert allowed.filter(reason="oidc").exists()
    sync = AuditEvent.objects.filter(action="directory.sync", actor="ts-carl").first()
    assert "role developer on team:ts-alpha" in sync.summary["added"]
    # Tokens never reach a log or the audit log.
    tokens = oidc_on.access_tokens()
    assert tokens
    audit_text = " ".join(str(e.summary) + e.reason for e in AuditEvent.objects.all())
    for token in tokens:
        assert token not in caplog.text
        assert token not in audit_text


def test_state_that_does_not_match_is_refused(client, oidc_on, mappings):
    url = start(client)
    answer = oidc_on.session("ts-carl").get(url, allow_redirects=False, timeout=10)
    location = urlparse(answer.headers["Location"])
    query = parse_qs(location.query)
    response = client.get(location.path, {"code": query["code"][0], "state": "forged-state"})
    assert response.status_code == 403
    assert b"Single sign-on was refused" in response.content
    assert not signed_in(client)
    assert not User.objects.filter(username="ts-carl").exists()
    assert any("state does not match" in r for r in denied_reasons())


def test_callback_from_another_browser_is_refused(client, oidc_on, mappings):
    """A code and state made for one browser, replayed in another (no state in its session)."""
    from django.test import Client

    url = start(client)
    answer = oidc_on.session("ts-carl").get(url, allow_redirects=False, timeout=10)
    location = urlparse(answer.headers["Location"])
    other = Client()
    response = other.get(f"{location.path}?{location.query}")
    assert response.status_code == 403
    assert other.get("/").status_code == 302
    assert not User.objects.filter(username="ts-carl").exists()


@pytest.mark.parametrize(
    "mode, reason",
    [
        ("nonce", "nonce"),
        ("signature", "bad_signature"),
        ("audience", "aud"),
        ("expired", "expired"),
    ],
)
def test_bad_id_tokens_are_refused(client, oidc_on, mappings, mode, reason):
    oidc_on.tamper(mode)
    response = callback(client, oidc_on, "ts-carl")
    assert response.status_code == 403, response.content[:300]
    assert b"Single sign-on was refused" in response.content
    assert not signed_in(client)
    assert not User.objects.filter(username="ts-carl").exists()
    reasons = denied_reasons()
    assert any("ID token refused" in r and reason in r for r in reasons), reasons


def test_claim_that_maps_to_no_team_is_refused(client, oidc_on, mappings):
    response = callback(client, oidc_on, "ts-ursula")
    assert response.status_code == 403
    assert b"None of your directory groups gives access" in response.content
    assert not signed_in(client)
    assert not User.objects.filter(username="ts-ursula").exists()
    assert any("maps to a team" in r for r in denied_reasons("ts-ursula"))


def test_provider_down_is_a_clear_refusal(client, settings, oidc_on, mappings):
    from directory import oidc
    from tests.sso.slapd import free_port

    settings.BERTH_OIDC = oidc_on.berth_settings(ISSUER=f"http://127.0.0.1:{free_port()}/o")
    oidc.forget_clients()
    response = client.get("/sso/oidc/login/")
    assert response.status_code == 403
    assert b"Single sign-on is not available right now" in response.content
    assert any("provider unreachable" in r for r in denied_reasons())


def test_logout_ends_the_provider_session_too(client, oidc_on, mappings):
    assert callback(client, oidc_on, "ts-oscar").status_code == 302
    response = client.post("/logout/")
    assert response.status_code == 302
    end = urlparse(response["Location"])
    assert f"{end.scheme}://{end.netloc}{end.path}" == f"{oidc_on.issuer}/logout/"
    query = parse_qs(end.query)
    assert query["post_logout_redirect_uri"] == ["http://testserver/login/"]
    assert query["id_token_hint"][0].count(".") == 2
    assert not signed_in(client)
    assert AuditEvent.objects.filter(action="auth.logout", actor="ts-oscar").exists()


def test_sso_button_shows_only_when_configured(client, settings, oidc_on):
    assert b'id="sso-login"' in client.get("/login/").content
    settings.BERTH_OIDC = {}
    assert b'id="sso-login"' not in client.get("/login/").content


def test_group_claim_may_be_a_nested_path():
    from directory.oidc import claim

    claims = {"groups": ["a"], "realm_access": {"roles": ["b"]}, "flat": "c"}
    assert claim(claims, "groups") == ["a"]
    assert claim(claims, "realm_access.roles") == ["b"]
    assert claim(claims, "flat.deeper") is None
    assert claim(claims, "missing") is None


def test_wrong_pkce_verifier_is_refused_by_the_provider(client, oidc_on, mappings):
    """The provider checks the verifier against the challenge: a code stolen without this
    browser's verifier is worthless."""
    url = start(client)
    state = parse_qs(urlparse(url).query)["state"][0]
    session = client.session
    key = next(k for k in session.keys() if k.endswith(state))  # noqa: SIM118 (no __iter__)
    session[key]["data"]["code_verifier"] = "x" * 64
    session.save()
    answer = oidc_on.session("ts-carl").get(url, allow_redirects=False, timeout=10)
    location = urlparse(answer.headers["Location"])
    response = client.get(f"{location.path}?{location.query}")
    assert response.status_code == 403
    assert not signed_in(client)
    assert any("invalid_grant" in r for r in denied_reasons()), denied_reasons()
