"""Limit maxima per role and quotas per team (issue 14): at the limit allowed, one over refused
with a message that names the limit, what was asked, the maximum and what is in use."""

import pytest

from accounts.models import Team
from audit.models import AuditEvent
from containers.models import Container
from operations.models import Operation
from rbac.models import Role
from volumes.models import Volume

pytestmark = pytest.mark.django_db
GIB, MIB = 1024**3, 1024**2


def create(api, host, limits=None, *, who="developer", start=True, team="tp-alpha", **spec):
    body = {
        "team": team,
        "host": host.name,
        "start": start,
        "spec": {"image": "busybox", "limits": limits or {}, **spec},
    }
    return api(who).post("/api/v1/containers/", body, format="json")


def message(response) -> str:
    return response.json()["error"]["message"]


# -- maxima of the developer role (8 GiB, 16 GiB memory+swap, 2 CPUs, 4096 pids, 32 ports) --


@pytest.mark.parametrize(
    "limits, ok",
    [
        ({"memory": 8 * GIB}, True),
        ({"memory": 8 * GIB + 1}, False),
        ({"memory": "64g"}, False),
        ({"memory": GIB, "memory_swap": 16 * GIB}, True),
        ({"memory": GIB, "memory_swap": -1}, False),
        ({"cpu_quota": 200000, "cpu_period": 100000}, True),
        ({"cpu_quota": 200001, "cpu_period": 100000}, False),
        ({"pids": 4096}, True),
        ({"pids": 4097}, False),
        ({"pids": -1}, False),
    ],
)
def test_developer_maxima(api, host, limits, ok):
    response = create(api, host, limits)
    assert response.status_code == (202 if ok else 403), response.content
    if not ok:
        assert "the maximum for your role is" in message(response) or "no limit asked" in message(
            response
        )
        assert not Operation.objects.exists()


def test_the_message_names_limit_value_and_maximum(api, host):
    response = create(api, host, {"memory": 64 * GIB})
    assert message(response) == "memory: 64 GiB asked, the maximum for your role is 8 GiB"
    event = AuditEvent.objects.filter(action="container.create").latest("id")
    assert event.outcome == "denied" and "64 GiB" in event.reason


@pytest.mark.parametrize("count, ok", [(32, True), (33, False)])
def test_published_ports_maximum(api, host, count, ok):
    ports = [{"container_port": 80, "host_port": 20000, "host_port_end": 20000 + count - 1}]
    response = create(api, host, network={"ports": ports})
    assert response.status_code == (202 if ok else 403), response.content


def test_admin_has_no_maxima(api, host):
    assert create(api, host, {"memory": 64 * GIB}, who="admin").status_code == 202


def test_custom_role_maxima_through_the_api(api, host):
    role = api("admin").post(
        "/api/v1/roles/",
        {"name": "tiny", "permissions": ["container.create"], "max_limits": {"memory": 64 * MIB}},
        format="json",
    )
    assert role.status_code == 201, role.content
    assert Role.objects.get(name="tiny").max_limits == {"memory": 64 * MIB}
    bad = api("admin").post(
        "/api/v1/roles/", {"name": "bad", "max_limits": {"gpus": 1}}, format="json"
    )
    assert bad.status_code == 400 and "keys from" in str(bad.json())


# -- team quotas ------------------------------------------------------------------------------


def set_quotas(api, team, quotas, who="admin"):
    return api(who).put(f"/api/v1/teams/{team.pk}/quotas/", {"quotas": quotas}, format="json")


def test_only_quota_holders_set_quotas(api, teams):
    assert set_quotas(api, teams["alpha"], {"containers": 1}, who="developer").status_code == 403
    assert set_quotas(api, teams["alpha"], {"bogus": 1}).status_code == 400
    assert set_quotas(api, teams["alpha"], {"containers": 1}).status_code == 200
    assert Team.objects.get(pk=teams["alpha"].pk).quotas == {"containers": 1}
    assert AuditEvent.objects.filter(action="team.quota", outcome="allowed").exists()


def test_container_and_running_quotas(api, host, teams):
    set_quotas(api, teams["alpha"], {"containers": 2, "running": 1})
    assert create(api, host).status_code == 202  # running 1/1, containers 1/2
    over = create(api, host)
    assert over.status_code == 403
    assert message(over) == "running: team tp-alpha's quota is 1, 1 in use, this asks 1 more"
    assert create(api, host, start=False).status_code == 202  # created, not running: 2/2
    assert "containers: team tp-alpha's quota is 2, 2 in use" in message(
        create(api, host, start=False)
    )
    stopped = Container.objects.get(desired_state="created")
    start = api("developer").post(f"/api/v1/containers/{stopped.pk}/start/")
    assert start.status_code == 403 and "running" in message(start)
    assert AuditEvent.objects.filter(outcome="denied", reason__contains="quota is").count() == 3
    usage = api("developer").get(f"/api/v1/teams/{teams['alpha'].pk}/usage/").json()
    assert usage["usage"]["containers"] == 2 and usage["usage"]["running"] == 1
    assert usage["quotas"] == {"containers": 2, "running": 1}


def test_memory_and_cpu_quotas(api, host, teams):
    set_quotas(api, teams["alpha"], {"memory": 512 * MIB, "cpus": 1500})
    one = {"memory": 256 * MIB, "cpu_quota": 50000, "cpu_period": 100000}
    assert create(api, host, one).status_code == 202
    assert create(api, host, one).status_code == 202  # 512 MiB, 1 CPU in use
    over = create(api, host, {"memory": MIB * 8, "cpu_quota": 50000, "cpu_period": 100000})
    assert over.status_code == 403
    assert message(over).startswith("memory: team tp-alpha's quota is 536870912, 536870912 in use")


def test_volume_quota(api, host, teams):
    set_quotas(api, teams["alpha"], {"volumes": 1})
    body = {"team": "tp-alpha", "host": host.name, "name": "v1"}
    assert api("developer").post("/api/v1/volumes/", body, format="json").status_code == 202
    body["name"] = "v2"
    refused = api("developer").post("/api/v1/volumes/", body, format="json")
    assert refused.status_code == 403 and "volumes" in message(refused)
    # A volume made on first use by a container counts as well.
    mounts = [{"type": "volume", "source": "v3", "target": "/d"}]
    assert create(api, host, mounts=mounts).status_code == 403
    assert list(Volume.objects.values_list("name", flat=True)) == ["v1"]
