"""Uploads and downloads of an agent without the web's data directory (transfers/files.py):
a host gets only the files named to it (its unfinished operation, or a call sealed for it and
not expired), each upload once, each archive stored once; every refusal audited."""

import base64
import hashlib
import json

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from django.test import Client

from audit.models import AuditEvent
from hosts.models import Host
from operations.models import Operation
from transfers import hostauth
from trust import envelope, keys

pytestmark = pytest.mark.django_db

UPLOAD = "cp-" + "a" * 32 + ".tar"


@pytest.fixture
def hosts(settings, tmp_path):
    settings.UPLOAD_DIR = tmp_path / "uploads"
    settings.DATA_DIR = tmp_path
    settings.UPLOAD_DIR.mkdir()
    made = {}
    for name in ("a", "b"):
        key = Ed25519PrivateKey.generate()
        host = Host.objects.create(
            name=f"tf-{name}", state="up", public_key=keys.encode_public(key.public_key())
        )
        made[name] = (host, key)
    return made


def _call(hosts, who, method, name, body=b"", **headers):
    host, key = hosts[who]
    path = f"/api/v1/transfers/files/{name}/"
    digest = hashlib.sha256(body).hexdigest() if method == "PUT" else ""
    auth = hostauth.header(host.name, key, method, path, digest)
    extra = {f"HTTP_{k.upper().replace('-', '_')}": v for k, v in headers.items()}
    if digest:
        extra["HTTP_X_BERTH_CONTENT_SHA256"] = digest
    return Client().generic(
        method,
        path,
        body,
        content_type="application/octet-stream",
        HTTP_AUTHORIZATION=auth,
        **extra,
    )


def _message(host_name, params, *, ttl=60.0):
    args = [7, "put", params]
    sealed = envelope.seal(
        keys.control_private_key(),
        task="agent.container_files",
        host=host_name,
        args=args,
        ttl=ttl,
    )
    body = {"task": "agent.container_files", "args": args, "envelope": sealed}
    return base64.b64encode(json.dumps(body).encode()).decode()


def test_an_operations_upload_goes_to_its_host_once(hosts, settings):
    host_a = hosts["a"][0]
    (settings.UPLOAD_DIR / "abc.tar").write_bytes(b"image archive")
    op = Operation.objects.create(
        kind="image.import",
        target_type="image",
        host=host_a,
        params={"path": "/elsewhere/uploads/abc.tar"},
    )
    other = _call(hosts, "b", "GET", "abc.tar", **{"X-Berth-Operation": str(op.pk)})
    assert other.status_code == 403
    assert _call(hosts, "a", "GET", "x.tar", **{"X-Berth-Operation": str(op.pk)}).status_code == (
        403
    )
    assert _call(hosts, "a", "GET", "abc.tar").status_code == 403  # nothing names it
    got = _call(hosts, "a", "GET", "abc.tar", **{"X-Berth-Operation": str(op.pk)})
    assert got.status_code == 200 and b"".join(got.streaming_content) == b"image archive"
    assert not (settings.UPLOAD_DIR / "abc.tar").exists()
    again = _call(hosts, "a", "GET", "abc.tar", **{"X-Berth-Operation": str(op.pk)})
    assert again.status_code == 404
    outcomes = list(
        AuditEvent.objects.filter(action="transfer.fetch").values_list("outcome", flat=True)
    )
    assert outcomes.count("allowed") == 1 and outcomes.count("denied") == 4
    Operation.objects.filter(pk=op.pk).update(state=Operation.State.SUCCEEDED)
    (settings.UPLOAD_DIR / "abc.tar").write_bytes(b"image archive")
    done = _call(hosts, "a", "GET", "abc.tar", **{"X-Berth-Operation": str(op.pk)})
    assert done.status_code == 403  # a finished operation names nothing any more


def test_a_signed_call_names_its_upload_for_its_host_only(hosts, settings):
    (settings.UPLOAD_DIR / UPLOAD).write_bytes(b"tar")
    for_a = _message("tf-a", {"path": "/tmp", "upload": UPLOAD})
    assert _call(hosts, "b", "GET", UPLOAD, **{"X-Berth-Message": for_a}).status_code == 403
    expired = _message("tf-a", {"upload": UPLOAD}, ttl=-120)
    assert _call(hosts, "a", "GET", UPLOAD, **{"X-Berth-Message": expired}).status_code == 403
    body = json.loads(base64.b64decode(for_a))
    body["args"][2]["upload"] = "cp-" + "b" * 32 + ".tar"  # args changed: the seal breaks
    forged = base64.b64encode(json.dumps(body).encode()).decode()
    assert _call(hosts, "a", "GET", UPLOAD, **{"X-Berth-Message": forged}).status_code == 403
    got = _call(hosts, "a", "GET", UPLOAD, **{"X-Berth-Message": for_a})
    assert got.status_code == 200 and b"".join(got.streaming_content) == b"tar"
    event = AuditEvent.objects.filter(action="transfer.fetch", outcome="denied").first()
    assert event is not None and event.reason


def test_an_archive_is_stored_once_with_its_checksum(hosts, settings):
    token = "c" * 32
    name = f"files-{token}.tar"
    call = _message("tf-a", {"path": "/etc", "out": token})
    stored = _call(hosts, "a", "PUT", name, b"archive", **{"X-Berth-Message": call})
    assert stored.status_code == 201, stored.content
    assert (settings.DATA_DIR / "exports" / name).read_bytes() == b"archive"
    again = _call(hosts, "a", "PUT", name, b"other", **{"X-Berth-Message": call})
    assert again.status_code == 409
    unnamed = _call(
        hosts, "a", "PUT", "files-" + "d" * 32 + ".tar", b"x", **{"X-Berth-Message": call}
    )
    assert unnamed.status_code == 403
    op = Operation.objects.create(
        kind="image.save", target_type="image", host=hosts["a"][0], params={}
    )
    saved = _call(hosts, "a", "PUT", f"{op.pk}.tar", b"save", **{"X-Berth-Operation": str(op.pk)})
    assert saved.status_code == 201


def test_people_are_refused(hosts, settings, api):
    (settings.UPLOAD_DIR / "abc.tar").write_bytes(b"secret")
    answer = api("admin").get("/api/v1/transfers/files/abc.tar/")
    assert answer.status_code == 403
    assert (settings.UPLOAD_DIR / "abc.tar").exists()


def test_other_methods_answer_405(hosts):
    answer = Client().delete("/api/v1/transfers/files/abc.tar/")
    assert answer.status_code == 405 and answer["Allow"] == "GET, PUT"
