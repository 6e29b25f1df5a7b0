"""Permission matrix: each default role x each API action -> expected status, and an audit event each."""

import pytest

from audit.models import AuditEvent

pytestmark = pytest.mark.django_db

ROLES = ("admin", "operator", "developer", "viewer", "auditor", "rando")


def row(*codes):
    """Expected statuses in ROLES order."""
    return dict(zip(ROLES, codes, strict=True))


# (method, path template, body, permission code, expected status per role). {a} is alpha's container.
CASES = [
    ("get", "/api/v1/containers/", None, "container.view", row(200, 200, 200, 200, 403, 403)),
    ("get", "/api/v1/containers/{a}/", None, "container.view", row(200, 200, 200, 200, 404, 404)),
    (
        "post",
        "/api/v1/containers/{a}/start/",
        {},
        "container.start",
        row(202, 202, 202, 403, 404, 404),
    ),
    (
        "post",
        "/api/v1/containers/{a}/stop/",
        {},
        "container.stop",
        row(202, 202, 202, 403, 404, 404),
    ),
    (
        "post",
        "/api/v1/containers/{a}/restart/",
        {},
        "container.restart",
        row(202, 202, 202, 403, 404, 404),
    ),
    (
        "post",
        "/api/v1/containers/{a}/kill/",
        {},
        "container.kill",
        row(202, 202, 202, 403, 404, 404),
    ),
    (
        "post",
        "/api/v1/containers/{a}/pause/",
        {},
        "container.pause",
        row(202, 202, 202, 403, 404, 404),
    ),
    (
        "post",
        "/api/v1/containers/{a}/unpause/",
        {},
        "container.unpause",
        row(202, 202, 202, 403, 404, 404),
    ),
    (
        "post",
        "/api/v1/containers/{a}/rename/",
        {"name": "tp-renamed"},
        "container.change",
        row(202, 202, 202, 403, 404, 404),
    ),
    (
        "delete",
        "/api/v1/containers/{a}/",
        None,
        "container.delete",
        row(202, 202, 202, 403, 404, 404),
    ),
    (
        "post",
        "/api/v1/containers/",
        {"team": "tp-alpha", "host": "tp-h1", "spec": {"image": "busybox", "name": "tp-new"}},
        "container.create",
        row(202, 403, 202, 403, 403, 403),
    ),
    (
        "post",
        "/api/v1/containers/{a}/exec/",
        {"command": ["id"], "user": "1000", "timeout": 1},
        "container.exec",
        row(504, 504, 504, 403, 404, 404),
    ),
    ("get", "/api/v1/images/", None, "image.view", row(200, 200, 200, 200, 403, 403)),
    ("get", "/api/v1/networks/", None, "network.view", row(200, 200, 200, 200, 403, 403)),
    ("get", "/api/v1/volumes/", None, "volume.view", row(200, 200, 200, 200, 403, 403)),
    (
        "post",
        "/api/v1/volumes/",
        {"name": "tp-vol", "team": "tp-alpha", "host": "tp-h1"},
        "volume.create",
        row(202, 403, 202, 403, 403, 403),
    ),
    ("get", "/api/v1/hosts/", None, "host.view", row(200, 200, 200, 200, 403, 403)),
    ("post", "/api/v1/hosts/", {"name": "tp-h2"}, "host.create", row(201, 403, 403, 403, 403, 403)),
    ("get", "/api/v1/users/", None, "user.view", row(200, 200, 403, 403, 403, 403)),
    ("get", "/api/v1/teams/", None, "team.view", row(200, 200, 200, 200, 403, 403)),
    (
        "post",
        "/api/v1/teams/",
        {"name": "tp-gamma"},
        "team.create",
        row(201, 403, 403, 403, 403, 403),
    ),
    ("get", "/api/v1/roles/", None, "role.view", row(200, 403, 403, 403, 403, 403)),
    ("get", "/api/v1/bindings/", None, "role.view", row(200, 403, 403, 403, 403, 403)),
    ("get", "/api/v1/operations/", None, "operation.view", row(200, 200, 200, 200, 403, 403)),
    ("get", "/api/v1/audit/", None, "audit.read", row(200, 403, 403, 403, 200, 403)),
    (
        "get",
        "/api/v1/audit/export/?export_format=json",
        None,
        "audit.read",
        row(200, 403, 403, 403, 200, 403),
    ),
    ("get", "/api/v1/tokens/", None, "token.view", row(200, 200, 200, 200, 200, 403)),
]


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize(
    ("method", "path", "body", "code", "expected"), CASES, ids=[f"{c[0]} {c[1]}" for c in CASES]
)
def test_matrix(api, users, containers, host, settings, role, method, path, body, code, expected):
    # No host agent runs here: an allowed exec is sent to the host's queue and times out (504).
    settings.BERTH_RPC_TIMEOUT_SECONDS = 1
    want = expected[role]
    client = api(role)
    before = AuditEvent.objects.order_by("-seq").values_list("seq", flat=True).first() or 0
    url = path.format(a=containers["alpha"].pk)
    response = (
        getattr(client, method)(url, body, format="json")
        if body is not None
        else getattr(client, method)(url)
    )
    assert response.status_code == want, (role, url, response.content[:300])
    if want >= 400:  # one error format everywhere
        assert set(response.json()) == {"error"}
        assert set(response.json()["error"]) == {"code", "message", "details"}
    events = AuditEvent.objects.filter(seq__gt=before, actor=role, action=code)
    outcome = "allowed" if want < 400 or want == 504 else "denied"
    assert events.filter(outcome=outcome).exists(), (
        role,
        code,
        list(events.values("action", "outcome", "reason")),
    )


def test_other_teams_container_is_404_not_403(api, containers):
    client = api("developer")
    beta = containers["beta"].pk
    for method, url in [
        ("get", f"/api/v1/containers/{beta}/"),
        ("post", f"/api/v1/containers/{beta}/start/"),
    ]:
        response = getattr(client, method)(url)
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "not_found"
    assert (
        AuditEvent.objects.filter(actor="developer", object_id=str(beta), outcome="denied").count()
        == 2
    )
    listed = client.get("/api/v1/containers/").json()["results"]
    assert [c["name"] for c in listed] == ["tp-web-a"]
