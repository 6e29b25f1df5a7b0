"""API tokens: hashed at rest, shown once, expiring, revocable, optionally read-only."""

from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from accounts.models import ApiToken, hash_token
from audit.models import AuditEvent

pytestmark = pytest.mark.django_db


def _bearer(secret):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    return client


def test_issue_use_and_revoke(api, users, containers):
    response = api("developer").post("/api/v1/tokens/", {"name": "tp-ci"}, format="json")
    assert response.status_code == 201
    secret = response.json()["token"]
    token = ApiToken.objects.get(name="tp-ci")
    assert token.key_hash == hash_token(secret) and secret not in token.key_hash
    client = _bearer(secret)
    assert client.get("/api/v1/containers/").status_code == 200
    assert (
        client.get("/api/v1/tokens/").json()["results"][0].get("token") is None
    )  # never shown again
    assert client.delete(f"/api/v1/tokens/{token.pk}/").status_code == 204
    response = client.get("/api/v1/containers/")
    assert response.status_code == 401
    assert response.json()["error"]["message"] == "Token revoked."


def test_expired_and_unknown_tokens(users):
    token, secret = ApiToken.issue(users["viewer"], "tp-old", days=1)
    ApiToken.objects.filter(pk=token.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    response = _bearer(secret).get("/api/v1/containers/")
    assert response.status_code == 401 and "expired" in response.json()["error"]["message"]
    assert _bearer("berth_nope").get("/api/v1/containers/").status_code == 401
    assert APIClient().get("/api/v1/containers/").status_code in (401, 403)


def test_read_only_token_only_reads(users, containers):
    _, secret = ApiToken.issue(users["admin"], "tp-ro", read_only=True)
    client = _bearer(secret)
    assert client.get("/api/v1/containers/").status_code == 200
    response = client.post(f"/api/v1/containers/{containers['alpha'].pk}/stop/")
    assert response.status_code == 403
    assert "read-only" in response.json()["error"]["message"]
    assert AuditEvent.objects.filter(
        actor="admin", action="container.stop", outcome="denied"
    ).exists()


def test_tokens_are_private_to_their_owner(api, users):
    token, _ = ApiToken.issue(users["developer"], "tp-mine")
    assert api("admin").get(f"/api/v1/tokens/{token.pk}/").status_code == 404
    assert api("admin").get("/api/v1/tokens/").json()["count"] == 0


def test_session_post_needs_csrf(users, containers):
    client = APIClient(enforce_csrf_checks=True)
    client.force_login(users["admin"])
    response = client.post(f"/api/v1/containers/{containers['alpha'].pk}/start/")
    assert response.status_code == 403
    assert "CSRF" in response.json()["error"]["message"]
