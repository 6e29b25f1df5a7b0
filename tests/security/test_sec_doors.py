"""Dangerous options through every door: the dashboard form, exec, unknown fields, uploads."""

import io

import pytest

from audit.models import AuditEvent
from containers.models import Container
from operations.models import Operation

pytestmark = pytest.mark.django_db

# Fields a developer's form never shows, forged into the POST; each must be refused.
FORGED = {
    "privileged": {"privileged": "on"},
    "cap_add": {"cap_add": "SYS_ADMIN"},
    "cap_add_lower": {"cap_add": "cap_sys_ptrace"},
    "devices": {"devices": "/dev/sda"},
    "host_pid": {"host_namespaces": ["pid"]},
    "seccomp_off": {"unconfined": "on"},
    "bind_etc": {"volumes": "/etc:/x"},
    "bind_shadow": {"volumes": "/etc/shadow:/x:ro"},
    "volume_dotdot": {"volumes": "../../etc:/x"},
    "host_network": {"network": "host"},
    "low_port": {"ports": "80:80"},
    "host_address": {"ports": "127.0.0.1:8080:80"},
    "join_other_team": {"network": "container:ts-web-b"},
}


@pytest.mark.parametrize("case", sorted(FORGED))
def test_dashboard_form_refuses_forged_dangerous_fields(page, teams, host, containers, case):
    client = page("developer")
    form = client.get("/containers/new/")
    for hidden in ("privileged", "cap_add", "devices", "unconfined"):
        assert f'name="{hidden}"'.encode() not in form.content
    body = {"image": "busybox", "team": teams["alpha"].pk, "host": host.pk, "restart": "no"}
    response = client.post("/containers/new/", body | FORGED[case])
    assert response.status_code in (400, 403), response.status_code
    assert not Container.objects.filter(team=teams["alpha"]).exclude(name="ts-web-a").exists()
    assert not Operation.objects.exists()
    assert AuditEvent.objects.filter(action="container.create", outcome="denied").exists()


@pytest.mark.parametrize("user", ["00", "000:0", "0:1000", "root:root", " 0"])
def test_exec_as_root_in_any_spelling_needs_exec_root(api, containers, user):
    # The operator may exec everywhere but is in no team: root in another team's container
    # needs container.exec_root, however the uid is written (the runtime reads "00" as uid 0).
    url = f"/api/v1/containers/{containers['alpha'].pk}/exec/"
    response = api("operator").post(url, {"command": ["id"], "user": user}, format="json")
    assert response.status_code in (400, 403), (user, response.status_code)
    assert not Operation.objects.exists()


@pytest.mark.parametrize(
    "extra",
    [
        {"sysctls": {"net.ipv4.ip_forward": "1"}},
        {"ulimits": [{"name": "nofile", "soft": 1, "hard": 1}]},
        {"security_opt": ["seccomp=unconfined"]},
        {"Binds": ["/:/host"]},
        {"HostConfig": {"Privileged": True}},
    ],
)
def test_unknown_spec_fields_are_refused(api, host, extra):
    body = {"team": "ts-alpha", "host": host.name, "spec": {"image": "busybox", **extra}}
    response = api("developer").post("/api/v1/containers/", body, format="json")
    assert response.status_code == 400
    assert not Container.objects.exists()


def test_unknown_top_level_fields_are_refused(api, host):
    body = {"team": "ts-alpha", "host": host.name, "spec": {"image": "busybox"}, "privileged": True}
    response = api("developer").post("/api/v1/containers/", body, format="json")
    assert response.status_code == 400
    assert not Container.objects.exists()


def test_rename_takes_only_a_name(api, containers):
    url = f"/api/v1/containers/{containers['alpha'].pk}/rename/"
    body = {"name": "ts-new", "privileged": True}
    response = api("developer").post(url, body, format="json")
    assert response.status_code == 400
    assert not Operation.objects.exists()


def _tar(size: int) -> io.BytesIO:
    buf = io.BytesIO(b"\0" * size)
    buf.name = "upload.tar"
    return buf


@pytest.mark.parametrize(
    ("url", "field", "extra"),
    [
        ("/api/v1/images/import/", "file", {"ref": "ts/big:1"}),
        ("/api/v1/images/build/", "context", {"tag": "ts/big:1"}),
    ],
)
def test_uploads_larger_than_the_limit_are_refused(
    api, host, teams, settings, tmp_path, url, field, extra
):
    settings.BERTH_MAX_UPLOAD_BYTES = 1024
    settings.UPLOAD_DIR = tmp_path / "uploads"
    body = {field: _tar(4096), "host": host.name, "team": str(teams["alpha"].pk), **extra}
    response = api("admin").post(url, body, format="multipart")
    assert response.status_code == 400, response.content
    assert "too large" in response.json()["error"]["message"]
    assert not Operation.objects.exists()
    assert not any(settings.UPLOAD_DIR.glob("*")) if settings.UPLOAD_DIR.exists() else True


@pytest.mark.parametrize(
    "subnet", ["8.8.8.0/24", "1.1.1.0/24", "127.0.0.0/24", "169.254.0.0/16", "224.0.0.0/24"]
)
def test_a_network_cannot_take_public_or_special_addresses(api, host, subnet):
    # A bridge route for 8.8.8.0/24 would divert the host's own traffic into the bridge.
    body = {"name": "ts-net", "team": "ts-alpha", "host": host.name, "subnet": subnet}
    response = api("developer").post("/api/v1/networks/", body, format="json")
    assert response.status_code == 400, response.content
    assert "private" in response.json()["error"]["message"]
    assert not Operation.objects.exists()


def test_a_private_subnet_is_accepted(api, host):
    body = {"name": "ts-net", "team": "ts-alpha", "host": host.name, "subnet": "10.77.0.0/24"}
    response = api("developer").post("/api/v1/networks/", body, format="json")
    assert response.status_code == 202, response.content


@pytest.mark.parametrize(
    "ref",
    [
        "127.0.0.1:6379/x:1",  # the broker on the host's loopback
        "localhost:5000/x:1",
        "LOCALHOST:5000/x:1",
        "169.254.169.254/latest:1",  # cloud metadata
        "10.0.0.5:5000/x:1",
        "192.168.1.1/x:1",
        "0.0.0.0:22/x:1",
    ],
)
def test_developer_cannot_make_the_agent_fetch_from_host_local_addresses(api, host, teams, ref):
    # The agent runs as root on the host: a pull from a loopback or private address reaches
    # services only the host should reach. Admins configure such registries instead.
    body = {"ref": ref, "host": host.name, "team": str(teams["alpha"].pk)}
    response = api("developer").post("/api/v1/images/pull/", body, format="json")
    assert response.status_code == 403, response.content
    assert "registry.manage" in response.json()["error"]["message"]
    assert not Operation.objects.exists()
    assert AuditEvent.objects.filter(action="registry.manage", outcome="denied").exists()


def test_public_registries_stay_open_and_admins_may_use_local_ones(api, host, teams):
    body = {"ref": "registry.example.com/x:1", "host": host.name, "team": str(teams["alpha"].pk)}
    assert api("developer").post("/api/v1/images/pull/", body, format="json").status_code == 202
    body = {"ref": "127.0.0.1:5000/x:1", "host": host.name}
    assert api("admin").post("/api/v1/images/pull/", body, format="json").status_code == 202


def test_the_dashboard_pull_form_refuses_host_local_addresses(page, host, teams):
    body = {"ref": "127.0.0.1:6379/x:1", "host": host.pk, "team": teams["alpha"].pk}
    response = page("developer").post("/images/pull/", body)
    assert response.status_code == 403
    assert not Operation.objects.exists()


def test_shared_images_are_read_only_for_developers(api, host, teams):
    from images.models import Image

    public = Image.objects.create(host=host, team=None, image_id="sha256:" + "a" * 64)
    theirs = Image.objects.create(host=host, team=teams["beta"], image_id="sha256:" + "b" * 64)
    dev = api("developer")
    assert dev.get(f"/api/v1/images/{public.pk}/").status_code == 200
    tag = {"tag": "ts/evil:1"}
    assert dev.post(f"/api/v1/images/{public.pk}/tag/", tag, format="json").status_code == 403
    assert dev.delete(f"/api/v1/images/{public.pk}/").status_code == 403
    assert dev.get(f"/api/v1/images/{theirs.pk}/").status_code == 404
    assert dev.post(f"/api/v1/images/{theirs.pk}/tag/", tag, format="json").status_code == 404
    assert not Operation.objects.exists()


@pytest.mark.parametrize(
    "spec",
    [
        {"namespaces": {"pid": "container:ts-web-b"}},
        {"namespaces": {"ipc": "container:ts-web-b"}},
        {"network": {"mode": "container:ts-web-b"}},
    ],
)
def test_joining_another_teams_container_namespaces_is_refused(api, host, containers, spec):
    body = {"team": "ts-alpha", "host": host.name, "spec": {"image": "busybox", **spec}}
    response = api("developer").post("/api/v1/containers/", body, format="json")
    assert response.status_code == 403, response.content
    assert Container.objects.count() == 2


def test_exec_body_takes_no_privilege_fields(api, containers):
    url = f"/api/v1/containers/{containers['alpha'].pk}/exec/"
    for extra in ({"privileged": True}, {"cap_add": ["SYS_ADMIN"]}, {"detach_keys": "x"}):
        body = {"command": ["id"], "user": "1000", **extra}
        response = api("developer").post(url, body, format="json")
        assert response.status_code == 400, extra
    assert not Operation.objects.exists()


def test_dashboard_import_refuses_an_upload_over_the_limit(page, host, teams, settings, tmp_path):
    settings.BERTH_MAX_UPLOAD_BYTES = 1024
    settings.UPLOAD_DIR = tmp_path / "uploads"
    body = {"archive": _tar(4096), "ref": "alpha/big:1", "host": host.pk, "team": teams["alpha"].pk}
    from django.contrib.messages import get_messages

    response = page("developer").post("/images/import/", body)
    assert response.status_code == 302  # back to the form, with the reason as a message
    assert any("too large" in str(m) for m in get_messages(response.wsgi_request))
    assert not Operation.objects.exists()
    assert not settings.UPLOAD_DIR.exists() or not any(settings.UPLOAD_DIR.iterdir())
