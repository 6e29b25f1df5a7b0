"""POST /networks/{id}/connect/ and /disconnect/: container.change on the container, the network
of the container's team on its host, audited; refusals leave no operation behind."""

import pytest

from audit.models import AuditEvent
from hosts.models import Host
from networks.models import Network
from operations.models import Operation
from tests.platform.factories import make_container


@pytest.fixture
def nets(teams, host):
    other_host = Host.objects.create(name="tp-h2", state=Host.State.UP)
    return {
        "app": Network.objects.create(team=teams["alpha"], host=host, name="app", state="ready"),
        "beta": Network.objects.create(team=teams["beta"], host=host, name="bnet", state="ready"),
        "far": Network.objects.create(
            team=teams["alpha"], host=other_host, name="far", state="ready"
        ),
    }


@pytest.fixture
def web(teams, host):
    return make_container(teams["alpha"], host, "web", desired_state="running")


def test_a_developer_connects_and_disconnects_a_container_of_the_team(api, nets, web):
    client = api("developer")
    url = f"/api/v1/networks/{nets['app'].pk}/connect/"
    response = client.post(url, {"container": "web", "aliases": ["www"]}, format="json")
    assert response.status_code == 202, response.content
    op = Operation.objects.get()
    assert op.kind == "container.network_connect" and op.target_id == str(web.pk)
    assert op.params == {"network": "app", "aliases": ["www"]}
    event = AuditEvent.objects.get(action="container.change", outcome="allowed")
    assert event.operation_id == op.pk

    # The row changes when the host has done it; until then it is not connected yet.
    web.spec = {**web.spec, "network": {"networks": ["bridge", "app"]}}
    web.save()
    response = client.post(
        f"/api/v1/networks/{nets['app'].pk}/disconnect/", {"container": web.pk}, format="json"
    )
    assert response.status_code == 202, response.content
    assert Operation.objects.latest("id").kind == "container.network_disconnect"


@pytest.mark.parametrize(
    "network, body, status, words",
    [
        ("beta", {"container": "web"}, 404, "not found"),  # another team's network: invisible
        ("app", {"container": "nope"}, 400, "unknown container"),
        ("app", {"container": "web", "aliases": ["bad alias!"]}, 400, "invalid alias"),
        ("app", {"container": "web", "ip_address": "300.1.1.1"}, 400, "ip_address"),
        ("app", {"container": "web", "extra": 1}, 400, "extra"),
    ],
)
def test_bad_connects_are_refused_with_nothing_queued(api, nets, web, network, body, status, words):
    response = api("developer").post(
        f"/api/v1/networks/{nets[network].pk}/connect/", body, format="json"
    )
    assert response.status_code == status, response.content
    assert words in response.json()["error"]["message"].lower()
    assert not Operation.objects.exists()


def test_another_hosts_network_and_an_existing_membership_are_refused(api, nets, web, teams):
    client = api("admin")
    far = client.post(f"/api/v1/networks/{nets['far'].pk}/connect/", {"container": "web"})
    assert far.status_code == 400 and "unknown container" in far.json()["error"]["message"]
    web.spec = {**web.spec, "network": {"networks": ["app"]}}
    web.save()
    again = client.post(f"/api/v1/networks/{nets['app'].pk}/connect/", {"container": "web"})
    assert again.status_code == 409 and "already connected" in again.json()["error"]["message"]
    only = client.post(f"/api/v1/networks/{nets['app'].pk}/disconnect/", {"container": "web"})
    assert only.status_code == 409 and "only network" in only.json()["error"]["message"]
    # A container of another team on the same host cannot join alpha's network.
    make_container(teams["beta"], web.host, "theirs")
    foreign = client.post(f"/api/v1/networks/{nets['app'].pk}/connect/", {"container": "theirs"})
    assert foreign.status_code == 400 and "another team" in foreign.json()["error"]["message"]
    assert not Operation.objects.exists()


def test_a_viewer_may_not_connect(api, nets, web):
    response = api("viewer").post(
        f"/api/v1/networks/{nets['app'].pk}/connect/", {"container": "web"}, format="json"
    )
    assert response.status_code == 403
    assert AuditEvent.objects.filter(action="container.change", outcome="denied").exists()
    assert not Operation.objects.exists()
