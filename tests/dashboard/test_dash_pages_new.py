"""Issue 23's new pages, server side: build, registries, network details (built-in too)."""

import pytest
from dash_helpers import make_container
from registries.models import Registry

from audit.models import AuditEvent
from networks.models import Network

pytestmark = pytest.mark.django_db


def test_build_page_for_builders_only(login, host):
    html = login("admin").get("/images/build/").content.decode()
    assert 'id="build-form"' in html and 'data-api="/api/v1/images/build/"' in html
    assert 'data-state="up" selected' in html
    assert 'id="image-build-link"' in login("admin").get("/images/").content.decode()
    assert login("viewer").get("/images/build/").status_code == 403
    assert 'id="image-build-link"' not in login("viewer").get("/images/").content.decode()


def test_registries_page_add_and_remove(login):
    client = login("admin")
    bad = client.post("/registries/", {"name": "td-r", "address": "http://x/y"})
    assert bad.status_code == 400 and "without a scheme" in bad.content.decode()
    ok = client.post(
        "/registries/",
        {
            "name": "td-r",
            "address": "reg.example.test:5000",
            "username": "u",
            "password": "pw-never-shown-7f3",
        },
    )
    assert ok.status_code == 302
    reg = Registry.objects.get(name="td-r")
    page = client.get("/registries/").content.decode()
    # (a password long enough that no random token on the page can hold it by chance)
    assert "reg.example.test:5000" in page and "pw-never-shown-7f3" not in page
    viewer = login("viewer")
    assert viewer.get("/registries/").status_code in (200, 403)
    assert viewer.post(f"/registries/{reg.id}/remove/").status_code in (403, 404)
    assert client.post(f"/registries/{reg.id}/remove/").status_code == 302
    assert not Registry.objects.filter(pk=reg.pk).exists()
    assert AuditEvent.objects.filter(action="registry.manage", outcome="allowed").count() == 2


def test_network_details_and_builtin_networks(login, teams, host):
    net = Network.objects.create(
        team=teams["alpha"], host=host, name="td-net", subnet="10.9.0.0/24"
    )
    on_net = make_container(teams["alpha"], host, "td-attached")
    on_net.spec["network"] = {"networks": ["td-net"]}
    on_net.save()
    plain = make_container(teams["alpha"], host, "td-plain")
    client = login("admin")
    listing = client.get("/networks/").content.decode()
    assert 'data-builtin="bridge"' in listing and f"/networks/{net.id}/" in listing
    detail = client.get(f"/networks/{net.id}/").content.decode()
    attached = detail.split('id="network-containers"')[1].split("</table>")[0]
    assert "td-attached" in attached and "td-plain" not in attached and "10.9.0.0/24" in detail
    # td-plain may join it: the connect form offers it (and only it).
    offered = detail.split('id="network-connect"')[1].split("</form>")[0]
    assert "td-plain" in offered and "td-attached" not in offered
    bridge = client.get("/networks/builtin/bridge/").content.decode()
    assert plain.name in bridge and "td-attached" not in bridge
    assert client.get("/networks/builtin/nope/").status_code == 404
    # The developer of alpha sees alpha's containers; beta's never appear.
    make_container(teams["beta"], host, "td-beta-c")
    dev = login("developer").get("/networks/builtin/bridge/").content.decode()
    assert "td-plain" in dev and "td-beta-c" not in dev
