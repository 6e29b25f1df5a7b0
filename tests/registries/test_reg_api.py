"""Registries and image actions through the REST API, with the real gate and audit."""

import io
import tarfile

import pytest
from django.db import connection
from registries import crypto
from registries.models import OperationProgress, Registry

from audit.models import AuditEvent
from images.models import Image
from operations.models import Operation
from rbac.models import Role, RoleBinding

pytestmark = pytest.mark.django_db

SECRET = "tr-Sup3r-secret-pw"


def _raw_password_column(pk) -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT password_encrypted FROM registries_registry WHERE id = %s", [pk])
        return cursor.fetchone()[0]


def _create_registry(api, **extra):
    body = {"name": "tr-private", "address": "registry.example.com:5000", "username": "bob"}
    body.update(extra)
    return api("admin").post("/api/v1/registries/", body, format="json")


def test_admin_creates_a_registry_and_the_password_is_stored_encrypted(api):
    response = _create_registry(api, password=SECRET, insecure=True)
    assert response.status_code == 201, response.content
    data = response.json()
    assert "password" not in data and "password_encrypted" not in data
    assert data["has_password"] is True and data["insecure"] is True
    raw = _raw_password_column(data["id"])
    assert raw and SECRET not in raw
    assert crypto.decrypt(raw) == SECRET
    # Nothing the API returns carries the password, in any form.
    for path in ("/api/v1/registries/", f"/api/v1/registries/{data['id']}/"):
        body = api("admin").get(path).content.decode()
        assert SECRET not in body and raw not in body
    assert Registry.objects.get(pk=data["id"]).credentials() == ("bob", SECRET)
    event = AuditEvent.objects.get(action="registry.manage", outcome="allowed")
    assert SECRET not in str(event.summary)


def test_changing_the_password_reencrypts_and_blank_clears_it(api):
    pk = _create_registry(api, password=SECRET).json()["id"]
    before = _raw_password_column(pk)
    response = api("admin").patch(
        f"/api/v1/registries/{pk}/", {"password": "other-pw"}, format="json"
    )
    assert response.status_code == 200, response.content
    after = _raw_password_column(pk)
    assert after != before and crypto.decrypt(after) == "other-pw"
    api("admin").patch(f"/api/v1/registries/{pk}/", {"password": ""}, format="json")
    assert _raw_password_column(pk) == ""
    assert api("admin").get(f"/api/v1/registries/{pk}/").json()["has_password"] is False


@pytest.mark.parametrize("name", ["operator", "developer", "viewer", "rando"])
def test_only_admins_manage_registries(api, name):
    client = api(name)
    response = client.post(
        "/api/v1/registries/", {"name": "tr-x", "address": "r.example.com"}, format="json"
    )
    assert response.status_code == 403
    assert not Registry.objects.exists()
    assert client.get("/api/v1/registries/").status_code == 403
    pk = _create_registry(api).json()["id"]
    assert client.delete(f"/api/v1/registries/{pk}/").status_code in (403, 404)
    assert client.patch(
        f"/api/v1/registries/{pk}/", {"insecure": True}, format="json"
    ).status_code in (
        403,
        404,
    )
    assert Registry.objects.get(pk=pk).insecure is False
    assert AuditEvent.objects.filter(
        action__in=["registry.manage", "registry.view"], outcome="denied"
    ).exists()


def test_admin_deletes_a_registry(api):
    pk = _create_registry(api).json()["id"]
    assert api("admin").delete(f"/api/v1/registries/{pk}/").status_code == 204
    assert not Registry.objects.exists()


@pytest.mark.parametrize(
    "body",
    [
        {"name": "tr-a", "address": "r.example.com", "password_encrypted": "x"},
        {"name": "tr-a", "address": "r.example.com", "url": "https://r.example.com"},
        {"name": "tr-a", "address": "r.example.com", "has_password": True},
        {"name": "tr-a", "address": "https://r.example.com/v2"},
        {"name": "tr-a", "address": "r.example.com", "insecure": "yes"},
    ],
)
def test_bad_registry_bodies_are_refused(api, body):
    response = api("admin").post("/api/v1/registries/", body, format="json")
    assert response.status_code == 400, response.content
    assert response.json()["error"]["code"] == "invalid"
    assert not Registry.objects.exists()


def test_developer_can_pull_viewer_cannot(api, users, teams):
    body = {"ref": "registry.example.com:5000/tr/app:1", "team": "tr-alpha"}
    response = api("developer").post("/api/v1/images/pull/", body, format="json")
    assert response.status_code == 202, response.content
    payload = response.json()
    op = Operation.objects.get(pk=payload["operation"]["id"])
    assert op.kind == "image.pull" and op.team == teams["alpha"]
    assert op.params == {
        "ref": "registry.example.com:5000/tr/app:1",
        "registry": None,
        "private": True,
    }
    assert payload["progress"] == f"/api/v1/operations/{op.pk}/progress/"
    event = AuditEvent.objects.get(action="image.pull", outcome="allowed")
    assert event.operation_id == op.pk and event.actor == "tr-developer"

    for name in ("viewer", "rando"):
        response = api(name).post("/api/v1/images/pull/", body, format="json")
        assert response.status_code == 403
    assert Operation.objects.count() == 1
    assert AuditEvent.objects.filter(action="image.pull", outcome="denied").count() == 2


def test_developer_cannot_pull_into_another_team_or_as_public(api):
    for team in ("tr-beta", None):
        body = {"ref": "busybox:1", **({"team": team} if team else {})}
        response = api("developer").post("/api/v1/images/pull/", body, format="json")
        assert response.status_code in (400, 403), response.content
    assert not Operation.objects.exists()


@pytest.mark.parametrize(
    "body",
    [
        {"ref": "busybox", "team": "tr-alpha", "password": "x"},
        {"ref": "busybox", "team": "tr-alpha", "credentials": {"user": "a"}},
        {"ref": "bad ref with spaces", "team": "tr-alpha"},
        {"ref": "", "team": "tr-alpha"},
        {"team": "tr-alpha"},
    ],
)
def test_bad_pull_bodies_are_refused(api, body):
    response = api("developer").post("/api/v1/images/pull/", body, format="json")
    assert response.status_code == 400, response.content
    assert not Operation.objects.exists()


def test_using_a_registry_is_a_permission_of_its_own(api, users):
    reg = _create_registry(api, password=SECRET).json()
    body = {"ref": "tr/app:1", "team": "tr-alpha", "registry": "tr-private"}
    response = api("developer").post("/api/v1/images/pull/", body, format="json")
    assert response.status_code == 403
    assert AuditEvent.objects.filter(action="registry.use", outcome="denied").exists()
    assert not Operation.objects.exists()

    role = Role.objects.create(name="tr-registry-user", permissions=["registry.use"])
    RoleBinding.objects.create(user=users["developer"], role=role)
    response = api("developer").post("/api/v1/images/pull/", body, format="json")
    assert response.status_code == 202, response.content
    op = Operation.objects.get()
    # The reference is placed in the registry; only its id crosses to the agent, never a secret.
    assert op.params["ref"] == "registry.example.com:5000/tr/app:1"
    assert op.params["registry"] == reg["id"]
    assert SECRET not in str(op.params)
    assert AuditEvent.objects.filter(action="registry.use", outcome="allowed").exists()


def test_a_reference_into_another_registry_is_refused(api):
    _create_registry(api, password=SECRET)
    body = {"ref": "evil.example.com/tr/app:1", "registry": "tr-private", "host": "tr-h1"}
    response = api("admin").post("/api/v1/images/pull/", body, format="json")
    assert response.status_code == 400
    assert "not registry.example.com:5000" in response.json()["error"]["message"]
    assert not Operation.objects.exists()


def _context_tar() -> io.BytesIO:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        data = b"FROM busybox\nCOPY hello /hello\n"
        info = tarfile.TarInfo("Dockerfile")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    buf.seek(0)
    buf.name = "context.tar"
    return buf


def test_developer_can_build_viewer_cannot(api, settings, tmp_path):
    settings.UPLOAD_DIR = tmp_path / "uploads"
    body = {
        "context": _context_tar(),
        "tag": "tr/built:1",
        "team": "tr-alpha",
        "build_args": '{"V": "1"}',
    }
    response = api("developer").post("/api/v1/images/build/", body, format="multipart")
    assert response.status_code == 202, response.content
    op = Operation.objects.get()
    assert op.kind == "image.build" and op.params["build_args"] == {"V": "1"}
    assert op.params["tag"] == "tr/built:1" and op.params["dockerfile"] == "Dockerfile"
    assert tarfile.is_tarfile(op.params["path"])
    response = api("viewer").post(
        "/api/v1/images/build/", {"context": _context_tar(), "host": "tr-h1"}, format="multipart"
    )
    assert response.status_code == 403
    assert Operation.objects.count() == 1


@pytest.mark.parametrize(
    "extra",
    [{"build_args": "[1]"}, {"dockerfile": "../Dockerfile"}, {"dockerfile": "/etc/passwd"}],
)
def test_bad_build_requests_are_refused(api, settings, tmp_path, extra):
    settings.UPLOAD_DIR = tmp_path / "uploads"
    body = {"context": _context_tar(), "team": "tr-alpha", **extra}
    response = api("developer").post("/api/v1/images/build/", body, format="multipart")
    assert response.status_code == 400
    assert not Operation.objects.exists()
    assert not (tmp_path / "uploads").exists() or not any((tmp_path / "uploads").iterdir())


def _image(host, team=None, **extra):
    return Image.objects.create(
        host=host,
        team=team,
        image_id="sha256:" + "a" * 64,
        repo_tags=["tr/app:1"],
        config={
            "history": [
                {"created_by": "/bin/sh -c #(nop) ADD file", "created": "2026-01-01T00:00:00Z"},
                {"created_by": '/bin/sh -c #(nop) CMD ["sh"]', "empty_layer": True},
            ]
        },
        **extra,
    )


def test_history_comes_from_the_image_config(api, host, teams):
    image = _image(host, teams["alpha"])
    response = api("developer").get(f"/api/v1/images/{image.pk}/history/")
    assert response.status_code == 200
    rows = response.json()["history"]
    assert [r["empty_layer"] for r in rows] == [True, False]
    assert rows[1]["created_by"].endswith("ADD file")
    # Beta's image is invisible to alpha's developer: 404, not 403.
    other = Image.objects.create(host=host, team=teams["beta"], image_id="sha256:" + "b" * 64)
    assert api("developer").get(f"/api/v1/images/{other.pk}/history/").status_code == 404


def test_push_and_save_are_not_for_developers_by_default(api, host, teams):
    image = _image(host, teams["alpha"])
    dev = api("developer")
    assert dev.post(f"/api/v1/images/{image.pk}/push/", {}, format="json").status_code == 403
    assert dev.post(f"/api/v1/images/{image.pk}/save/", {}, format="json").status_code == 403
    assert dev.post("/api/v1/images/prune/", {"host": "tr-h1"}, format="json").status_code == 403
    admin = api("admin")
    response = admin.post(
        f"/api/v1/images/{image.pk}/push/", {"target": "127.0.0.1:5000/tr/app:2"}, format="json"
    )
    assert response.status_code == 202, response.content
    assert Operation.objects.get(kind="image.push").params["target"] == "127.0.0.1:5000/tr/app:2"
    assert admin.post(f"/api/v1/images/{image.pk}/save/", {}, format="json").status_code == 202
    assert admin.post("/api/v1/images/prune/", {"host": "tr-h1"}, format="json").status_code == 202
    # The download needs a finished save of this image by this user.
    save = Operation.objects.get(kind="image.save")
    response = admin.get(f"/api/v1/images/{image.pk}/save/?operation={save.pk}")
    assert response.status_code == 409
    assert admin.get(f"/api/v1/images/{image.pk}/save/").status_code == 400


def test_search_needs_a_term_or_a_registry(api):
    dev = api("developer")
    response = dev.post("/api/v1/images/search/", {"host": "tr-h1"}, format="json")
    assert response.status_code == 400
    response = dev.post(
        "/api/v1/images/search/", {"term": "busybox", "host": "tr-h1"}, format="json"
    )
    assert response.status_code == 202
    assert Operation.objects.get().kind == "image.search"
    assert (
        api("viewer").post("/api/v1/images/search/", {"term": "x"}, format="json").status_code
        == 403
    )


def test_progress_is_readable_while_the_operation_runs(api, host, teams, users):
    op = Operation.objects.create(
        kind="image.pull", target_type="image", host=host, team=teams["alpha"], state="running"
    )
    OperationProgress.objects.create(
        operation=op,
        layers={
            "sha256:1": {"status": "Downloading", "current": 50, "total": 200},
            "sha256:2": {"status": "Already exists", "current": 0, "total": 10},
            "127.0.0.1:5000/tr/app:1": {"status": "Resolving", "current": 0, "total": 0},
        },
        log="step 1\nstep 2\n",
    )
    response = api("developer").get(f"/api/v1/operations/{op.pk}/progress/")
    assert response.status_code == 200, response.content
    data = response.json()
    assert data["state"] == "running" and data["status"] == "Resolving"
    assert [(layer["id"], layer["percent"]) for layer in data["layers"]] == [
        ("sha256:1", 25.0),
        ("sha256:2", 100.0),
    ]
    assert data["log"] == "step 1\nstep 2\n" and data["next"] == 14
    reads = AuditEvent.objects.filter(action="operation.view", outcome="allowed").count()
    poll = api("developer").get(
        f"/api/v1/operations/{op.pk}/progress/?since=7", HTTP_X_BERTH_POLL="1"
    )
    assert poll.json()["log"] == "step 2\n"
    # Polls are not audited when allowed (the page asks once a second).
    assert AuditEvent.objects.filter(action="operation.view", outcome="allowed").count() == reads
    assert api("developer").get(f"/api/v1/operations/{op.pk}/progress/?since=x").status_code == 400
    other = Operation.objects.create(
        kind="image.pull", target_type="image", host=host, team=teams["beta"]
    )
    assert api("developer").get(f"/api/v1/operations/{other.pk}/progress/").status_code == 404
    assert api("rando").get(f"/api/v1/operations/{op.pk}/progress/").status_code == 404


def test_builtin_roles_hold_the_new_permissions():
    def perms(name):
        return set(Role.objects.get(name=name).permissions)

    assert {"image.pull", "image.build"} <= perms("developer")
    assert "image.pull" in perms("operator") and "image.build" not in perms("operator")
    assert not {p for p in perms("viewer") if p.startswith(("image.p", "image.b", "registry."))}
    assert perms("admin") == {"*"}


# The flush after a transactional test truncates every table of `available_apps`: leaving the
# audit app out keeps PostgreSQL's append-only TRUNCATE trigger from refusing it.
@pytest.mark.django_db(
    transaction=True,
    available_apps=["accounts", "hosts", "operations", "registries", "images", "containers"],
)
def test_recorder_collects_events_from_many_threads(host):
    import threading

    from registries import recorder

    op = Operation.objects.create(kind="image.pull", target_type="image", host=host)
    with recorder.ProgressRecorder(op.pk) as rec:

        def download(n):
            for done in range(0, 1001, 250):
                rec.progress(
                    {"status": "Downloading", "id": f"layer{n}", "current": done, "total": 1000}
                )
            rec.progress({"status": "Download complete", "id": f"layer{n}", "total": 1000})

        threads = [threading.Thread(target=download, args=(n,)) for n in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        rec.log("x" * (recorder.MAX_LOG + 10))
        rec.log("tail\n")
    row = OperationProgress.objects.get(operation=op)
    assert sorted(row.layers) == [f"layer{n}" for n in range(4)]
    assert {v["status"] for v in row.layers.values()} == {"Download complete"}
    assert all(v["current"] == 1000 for v in row.layers.values())
    assert len(row.log) == recorder.MAX_LOG and row.log.endswith("tail\n")


def test_commit_needs_a_visible_container_and_build_rights(api, host, teams):
    from tests.platform.factories import make_container

    mine = make_container(teams["alpha"], host, "tr-c-a")
    theirs = make_container(teams["beta"], host, "tr-c-b")
    dev = api("developer")
    body = {"container": str(mine.pk), "ref": "tr/snap:1"}
    response = dev.post("/api/v1/images/commit/", body, format="json")
    assert response.status_code == 202, response.content
    op = Operation.objects.get()
    assert op.kind == "image.commit" and op.team == teams["alpha"]
    assert op.params["container"] == mine.pk and op.params["private"] is True
    response = dev.post(
        "/api/v1/images/commit/", {"container": str(theirs.pk), "ref": "tr/x:1"}, format="json"
    )
    assert response.status_code == 404
    body = {"container": str(mine.pk), "ref": "tr/snap:2"}
    assert api("operator").post("/api/v1/images/commit/", body, format="json").status_code == 403
    assert Operation.objects.count() == 1
