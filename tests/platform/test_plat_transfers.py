"""The transfer endpoint: only the transfer's source uploads, only its target downloads, signed.

Hosts sign requests with their own key (transfers/hostauth.py); everything else, a user's
session included, is refused and audited.
"""

import hashlib
from datetime import timedelta

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from django.test import Client
from django.utils import timezone

from audit.models import AuditEvent
from hosts.models import Host
from transfers import hostauth
from transfers.models import Transfer
from trust import keys

pytestmark = pytest.mark.django_db

ARCHIVE = b"\x1f\x8b pretend this is a volume archive" * 100


@pytest.fixture
def hosts(teams, settings, tmp_path):
    settings.BERTH_TRANSFER_DIR = str(tmp_path / "transfers")
    made = {}
    for name in ("src", "dst", "other"):
        key = Ed25519PrivateKey.generate()
        host = Host.objects.create(
            name=f"tt-{name}", state="up", public_key=keys.encode_public(key.public_key())
        )
        made[name] = (host, key)
    return made


@pytest.fixture
def transfer(hosts, teams):
    return Transfer.objects.create(
        source=hosts["src"][0],
        target=hosts["dst"][0],
        team=teams["alpha"],
        name="data",
        expires_at=timezone.now() + timedelta(minutes=5),
    )


def url(transfer):
    return f"/api/v1/transfers/{transfer.pk}/data/"


def put(hosts, who, transfer, body=ARCHIVE, *, declared=None, sign_as=None):
    host, key = hosts[who]
    digest = declared or hashlib.sha256(body).hexdigest()
    signer = hosts[sign_as][1] if sign_as else key
    auth = hostauth.header(host.name, signer, "PUT", url(transfer), digest)
    return Client().generic(
        "PUT",
        url(transfer),
        body,
        content_type="application/octet-stream",
        HTTP_AUTHORIZATION=auth,
        HTTP_X_BERTH_CONTENT_SHA256=digest,
    )


def get(hosts, who, transfer):
    host, key = hosts[who]
    auth = hostauth.header(host.name, key, "GET", url(transfer))
    return Client().get(url(transfer), HTTP_AUTHORIZATION=auth)


def test_source_uploads_once_and_target_downloads(hosts, transfer):
    response = put(hosts, "src", transfer)
    assert response.status_code == 201, response.content
    transfer.refresh_from_db()
    assert transfer.state == "stored" and transfer.size == len(ARCHIVE)
    assert put(hosts, "src", transfer).status_code == 409  # once
    response = get(hosts, "dst", transfer)
    assert response.status_code == 200
    assert b"".join(response.streaming_content) == ARCHIVE
    assert response["X-Berth-Content-Sha256"] == hashlib.sha256(ARCHIVE).hexdigest()
    assert AuditEvent.objects.filter(action="transfer.download", outcome="allowed").exists()


@pytest.mark.parametrize(
    "attempt",
    ["target uploads", "other uploads", "forged signature", "wrong checksum", "source downloads"],
)
def test_refusals_are_audited_and_change_nothing(hosts, transfer, attempt):
    if attempt == "target uploads":
        response = put(hosts, "dst", transfer)
    elif attempt == "other uploads":
        response = put(hosts, "other", transfer)
    elif attempt == "forged signature":
        response = put(hosts, "src", transfer, sign_as="other")
    elif attempt == "wrong checksum":
        response = put(hosts, "src", transfer, declared="0" * 64)
    else:
        put(hosts, "src", transfer)
        response = get(hosts, "src", transfer)
    assert response.status_code in (400, 403), response.content
    assert AuditEvent.objects.filter(action__startswith="transfer.", outcome="denied").exists()
    if attempt != "source downloads":
        transfer.refresh_from_db()
        assert transfer.state == "waiting"


def test_a_session_or_nothing_is_refused(hosts, transfer, users):
    client = Client()
    client.force_login(users["admin"])
    assert client.get(url(transfer)).status_code == 403
    assert Client().put(url(transfer), ARCHIVE).status_code == 403
    assert Client().post(url(transfer), {}).status_code == 403


def test_a_removed_host_is_refused(hosts, transfer):
    Host.objects.filter(pk=hosts["src"][0].pk).update(revoked_at=timezone.now())
    response = put(hosts, "src", transfer)
    assert response.status_code == 403
    assert "not an enrolled host" in response.json()["error"]["message"]


def test_an_expired_or_unknown_transfer_is_not_found(hosts, transfer):
    Transfer.objects.filter(pk=transfer.pk).update(expires_at=timezone.now() - timedelta(1))
    assert put(hosts, "src", transfer).status_code == 404
    host, key = hosts["src"]
    path = "/api/v1/transfers/not-a-uuid/data/"
    response = Client().get(path, HTTP_AUTHORIZATION=hostauth.header(host.name, key, "GET", path))
    assert response.status_code == 404
