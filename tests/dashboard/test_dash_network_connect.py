"""The network page connects a container of the network's team and disconnects one: queued
through the same service as the API (networks/joins.py), refused for those who may not."""

import pytest

from networks.models import Network
from operations.models import Operation
from tests.platform.factories import make_container


@pytest.fixture
def app_net(teams, host):
    return Network.objects.create(team=teams["alpha"], host=host, name="app", state="ready")


def test_a_developer_sees_the_form_and_connects_then_disconnects(login, teams, host, app_net):
    web = make_container(teams["alpha"], host, "web", desired_state="running")
    make_container(teams["beta"], host, "theirs")
    client = login("developer")
    page = client.get(f"/networks/{app_net.pk}/").content.decode()
    assert 'id="network-connect"' in page and ">web (" in page and "theirs" not in page

    response = client.post(
        f"/networks/{app_net.pk}/connect/", {"container": web.pk, "aliases": "www, api"}
    )
    assert response.status_code == 302
    op = Operation.objects.get()
    assert op.kind == "container.network_connect"
    assert op.params == {"network": "app", "aliases": ["www", "api"]}

    # Once the host has done it, the row lists the network and the page offers Disconnect.
    web.spec = {**web.spec, "network": {"networks": ["bridge", "app"]}}
    web.save()
    page = client.get(f"/networks/{app_net.pk}/").content.decode()
    assert "Disconnect" in page and 'id="network-connect"' not in page
    client.post(f"/networks/{app_net.pk}/disconnect/", {"container": web.pk})
    assert Operation.objects.latest("id").kind == "container.network_disconnect"


def test_a_viewer_gets_no_form_and_a_refusal(login, teams, host, app_net):
    web = make_container(teams["alpha"], host, "web", desired_state="running")
    client = login("viewer")
    page = client.get(f"/networks/{app_net.pk}/").content.decode()
    assert 'id="network-connect"' not in page
    response = client.post(f"/networks/{app_net.pk}/connect/", {"container": web.pk})
    assert response.status_code == 403
    assert not Operation.objects.exists()


def test_an_unknown_container_is_a_clear_error(login, app_net):
    response = login("developer").post(
        f"/networks/{app_net.pk}/connect/", {"container": "999999"}, HTTP_REFERER="/networks/"
    )
    assert response.status_code == 302
    assert not Operation.objects.exists()
