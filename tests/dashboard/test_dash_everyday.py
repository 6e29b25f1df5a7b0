"""Issue 23's everyday fixes, server side: counts, hidden links, host pickers, the list's
sorting, ports, bulk verbs and select-all, the create form's fields, errors and duplicate."""

import re

import pytest
from dash_helpers import make_container

from containers.models import Container
from hosts.models import Host

pytestmark = pytest.mark.django_db


def test_created_per_day_leaves_removed_containers_out(login, teams, host):
    make_container(teams["alpha"], host, "td-live", observed_state="running")
    for i in range(4):
        make_container(teams["alpha"], host, f"td-gone{i}", observed_state="removed")
    html = login("admin").get("/").content.decode()
    chart = re.search(r'id="chart-data" type="application/json">(.*?)</script>', html).group(1)
    assert '"containers": [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]' in chart
    # Each card links to the list filtered by the same state.
    assert 'href="/containers/?state=stopped"' in html


def test_viewer_sees_no_pull_link(login):
    assert "image-pull-link" not in login("viewer").get("/images/").content.decode()
    assert "image-pull-link" in login("admin").get("/images/").content.decode()


def test_host_pickers_show_state_default_to_an_up_host_and_disable_dead_ones(login, host):
    Host.objects.create(name="td-a-dead", state=Host.State.DOWN)
    Host.objects.create(name="td-b-cordoned", state=Host.State.UP, cordoned=True)
    html = login("admin").get("/containers/new/").content.decode()
    select = html.split('<select name="host" id="id_host"', 1)[1].split("</select>", 1)[0]
    assert re.search(r'data-state="down" disabled title="host td-a-dead is down', select)
    assert 'data-state="cordoned" disabled' in select
    assert re.search(rf'value="{host.id}" data-state="up" selected>', select)
    for page in ("/networks/", "/volumes/", "/images/pull/"):
        assert 'data-state="down" disabled' in login("admin").get(page).content.decode(), page


def test_create_refuses_a_down_host_server_side(login, teams):
    dead = Host.objects.create(name="td-dead", state=Host.State.DOWN)
    response = login("admin").post(
        "/containers/new/",
        {"image": "busybox", "team": teams["alpha"].id, "host": dead.id, "restart": "no"},
    )
    assert response.status_code == 409
    assert "is down" in response.content.decode()
    assert not Container.objects.filter(host=dead).exists()


def test_create_form_shows_every_error_at_once(login, teams, host):
    response = login("admin").post(
        "/containers/new/",
        {
            "image": "busybox",
            "team": teams["alpha"].id,
            "host": host.id,
            "restart": "no",
            "ports": "nope\n80\nalso-bad",
            "labels": "novalue",
            "volumes": "x",
            "stop_timeout": "-1",
        },
    )
    assert response.status_code == 400
    errors = response.content.decode().split('id="create-errors"', 1)[1].split("</ul>", 1)[0]
    for text in ("nope", "also-bad", "novalue", "invalid volume", "Stop timeout"):
        assert text in errors, text


def test_create_form_new_fields_reach_the_spec_and_duplicate_copies_them(login, teams, host):
    client = login("admin")
    response = client.post(
        "/containers/new/",
        {
            "image": "busybox",
            "name": "td-full",
            "team": teams["alpha"].id,
            "host": host.id,
            "restart": "no",
            "command": "sleep 100",
            "entrypoint": "/bin/sh -c",
            "working_dir": "/srv",
            "user": "1000:1000",
            "hostname": "web-1",
            "dns": "10.0.0.53 10.0.0.54",
            "stop_timeout": "3",
            "ports": "8080:80",
            "env": "A=1",
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    made = Container.objects.get(name="td-full")
    spec = made.spec
    assert spec["entrypoint"] == ["/bin/sh", "-c"] and spec["working_dir"] == "/srv"
    assert spec["user"] == "1000:1000" and spec["hostname"] == "web-1"
    assert spec["stop_timeout"] == 3 and spec["network"]["dns"] == ["10.0.0.53", "10.0.0.54"]
    copy = client.get(f"/containers/new/?from={made.id}").content.decode()
    assert 'value="td-full-copy"' in copy and 'value="/srv"' in copy
    assert 'value="10.0.0.53 10.0.0.54"' in copy and "8080:80" in copy
    assert client.get("/containers/new/?from=x").status_code == 400


def test_duplicate_of_an_invisible_container_is_404(login, teams, host):
    other = make_container(teams["beta"], host, "td-beta-secret")
    assert login("developer").get(f"/containers/new/?from={other.id}").status_code == 404


def test_list_sorts_names_naturally_and_shows_ports(login, teams, host):
    for n in (1, 10, 100, 11, 2):
        make_container(teams["alpha"], host, f"td-n-{n}")
    row = Container.objects.get(name="td-n-2")
    row.spec["network"] = {"ports": [{"container_port": 80, "host_port": 8080, "protocol": "tcp"}]}
    row.save()
    client = login("admin")
    html = client.get("/containers/?q=td-n-").content.decode()
    names = re.findall(r">(td-n-\d+)</a>", html)
    assert names == ["td-n-1", "td-n-2", "td-n-10", "td-n-11", "td-n-100"]
    assert "0.0.0.0:8080-&gt;80/tcp" in html
    html = client.get("/containers/?q=td-n-&sort=-name").content.decode()
    assert re.findall(r">(td-n-\d+)</a>", html)[0] == "td-n-100"
    html = client.get("/containers/?q=td-n-&sort=-created").content.decode()
    assert re.findall(r">(td-n-\d+)</a>", html)[0] == "td-n-2"


def test_bulk_acts_on_every_matching_container_across_pages(login, teams, host, td_broker):
    for i in range(55):
        make_container(
            teams["alpha"], host, f"td-b-{i}", observed_state="running", desired_state="running"
        )
    make_container(
        teams["alpha"], host, "td-other", observed_state="running", desired_state="running"
    )
    client = login("admin")
    html = client.get("/containers/?q=td-b-").content.decode()
    assert "select-all-pages" in html and 'value="kill"' in html and 'value="pause"' in html
    response = client.post("/containers/bulk/", {"action": "pause", "all": "1", "query": "q=td-b-"})
    assert response.status_code == 302
    paused = Container.objects.filter(name__startswith="td-b-", desired_state="paused").count()
    assert paused == 55
    assert Container.objects.get(name="td-other").desired_state == "running"


def test_removed_rows_show_only_when_asked(login, teams, host):
    make_container(teams["alpha"], host, "td-old", observed_state="removed")
    client = login("admin")
    assert "td-old" not in client.get("/containers/").content.decode()
    assert "td-old" in client.get("/containers/?state=removed").content.decode()


def test_inspect_fragment_is_live(login, teams, host):
    c = make_container(teams["alpha"], host, "td-insp", observed_state="running", pid=4242)
    html = login("viewer").get(f"/containers/{c.id}/state/?part=inspect").content.decode()
    assert 'id="inspect-pid">4242<' in html and "state-running" in html


def _dead_host_with_things(teams):
    from networks.models import Network
    from operations.models import Operation
    from volumes.models import Volume

    dead = Host.objects.create(name="td-gone", state=Host.State.DOWN)
    c = make_container(teams["alpha"], dead, "td-stuck", observed_state="pending")
    Network.objects.create(team=teams["alpha"], host=dead, name="td-net")
    Volume.objects.create(team=teams["alpha"], host=dead, name="td-vol")
    Operation.objects.create(
        kind="container.create", target_type="container", target_id=c.pk, host=dead
    )
    return dead, c


def test_operations_on_a_gone_host_can_be_cancelled(login, teams, host):
    from audit.models import AuditEvent
    from operations.models import Operation

    dead, stuck = _dead_host_with_things(teams)
    client = login("admin")
    html = client.get("/hosts/").content.decode()
    assert f'data-host-cancel="{dead.name}"' in html
    assert f'data-host-cancel="{host.name}"' not in html  # up: nothing to cancel
    assert client.post(f"/hosts/{dead.id}/cancel/").status_code == 302
    op = Operation.objects.get(host=dead)
    assert op.state == "failed" and "cancelled" in op.error
    stuck.refresh_from_db()
    assert stuck.observed_state == "removed"
    assert AuditEvent.objects.filter(action="host.change", outcome="allowed").exists()
    # A host that answers keeps its operations: refused with a message.
    response = client.post(f"/hosts/{host.id}/cancel/", HTTP_REFERER="/hosts/")
    assert response.status_code == 302
    assert "is up" in client.get("/hosts/").content.decode()
    # The viewer sees no such button and a forged POST is refused.
    assert "data-host-cancel" not in login("viewer").get("/hosts/").content.decode()
    assert login("viewer").post(f"/hosts/{dead.id}/cancel/").status_code == 403


def test_admin_forgets_a_gone_host_and_its_team_can_then_go(login, teams, host):
    from audit.models import AuditEvent
    from networks.models import Network

    dead, _ = _dead_host_with_things(teams)
    client = login("admin")
    assert login("operator").post(f"/hosts/{dead.id}/forget/").status_code == 403
    response = client.post(f"/hosts/{dead.id}/forget/")
    assert response.status_code == 302
    assert not Host.objects.filter(pk=dead.pk).exists()
    assert not Container.objects.filter(name="td-stuck").exists()
    assert not Network.objects.filter(name="td-net").exists()
    event = AuditEvent.objects.filter(action="host.delete", outcome="allowed").last()
    assert "td-stuck" in str(event.summary) and "td-vol" in str(event.summary)
    # An up host cannot be forgotten.
    client.post(f"/hosts/{host.id}/forget/", HTTP_REFERER="/hosts/")
    assert Host.objects.filter(pk=host.pk).exists()


def test_network_and_volume_creation_refuse_a_down_host(login, teams):
    from audit.models import AuditEvent
    from networks.models import Network
    from volumes.models import Volume

    dead = Host.objects.create(name="td-down2", state=Host.State.DOWN)
    client = login("admin")
    for path, model in (("/networks/new/", Network), ("/volumes/new/", Volume)):
        response = client.post(
            path, {"name": "td-x", "team": teams["alpha"].id, "host": dead.id}, HTTP_REFERER="/"
        )
        assert response.status_code == 302
        assert not model.objects.filter(host=dead).exists()
    assert "is down" in client.get("/").content.decode()
    assert AuditEvent.objects.filter(outcome="failed", reason__contains="is down").count() == 2
