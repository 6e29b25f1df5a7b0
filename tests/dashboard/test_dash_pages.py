"""The dashboard, the container list (filters, pagination, query count) and the create form."""

import json
import re

import pytest
from dash_helpers import make_container
from django.db import connection
from django.test.utils import CaptureQueriesContext

from audit.models import AuditEvent
from containers.models import Container
from operations.models import Operation

pytestmark = pytest.mark.django_db


def counts(response) -> dict[str, int]:
    html = response.content.decode()
    return {k: int(v) for k, v in re.findall(r'data-count="(\w+)">(\d+)<', html)}


def total(response_or_html) -> int:
    html = (
        response_or_html if isinstance(response_or_html, str) else response_or_html.content.decode()
    )
    return int(re.search(r"· (\d+) containers", html).group(1))


def test_dashboard_counts_match_the_database(login, teams, host):
    states = ["running"] * 3 + ["stopped"] * 2 + ["created", "paused", "ghost", "ghost"]
    for i, state in enumerate(states):
        make_container(teams["alpha" if i % 2 else "beta"], host, f"td-c{i}", observed_state=state)
    shown = counts(login("admin").get("/"))
    # One card per state: "stopped" is what the list's stopped filter shows, "created" apart.
    assert shown == {
        "total": 9,
        "running": 3,
        "stopped": 2,
        "created": 1,
        "paused": 1,
        "ghost": 2,
    }
    # The developer counts only alpha's containers.
    alpha = Container.objects.filter(team=teams["alpha"])
    shown = counts(login("developer").get("/"))
    assert shown["total"] == alpha.count()
    assert shown["ghost"] == alpha.filter(observed_state="ghost").count()
    chart = json.loads(
        re.search(
            r'id="chart-data" type="application/json">(.*?)</script>',
            login("admin").get("/").content.decode(),
        ).group(1)
    )
    assert chart["states"]["running"] == 3 and sum(chart["containers"]) == 9


def test_container_list_filters_and_pages(login, teams, host):
    for i in range(120):
        make_container(
            teams["alpha"] if i < 100 else teams["beta"],
            host,
            f"td-svc-{i:03d}",
            observed_state="running" if i % 3 else "stopped",
            labels={"tier": "db" if i % 10 == 0 else "web"},
            image="nginx" if i % 2 else "busybox",
        )
    client = login("admin")
    page = client.get("/containers/").content.decode()
    assert "page 1 of 3" in page and total(page) == 120
    page = client.get("/containers/?page=3").content.decode()
    assert "td-svc-119" in page and "td-svc-000" not in page
    assert total(client.get("/containers/?label=tier%3Ddb")) == 12
    assert total(client.get("/containers/?label=tier")) == 120
    assert total(client.get("/containers/?image=nginx")) == 60
    assert total(client.get("/containers/?state=stopped")) == 40
    assert total(client.get("/containers/?q=svc-05")) == 10
    assert total(client.get(f"/containers/?team={teams['beta'].pk}&state=running")) == 14
    # A lookup hidden in a label key is not a Django lookup.
    assert total(client.get("/containers/?label=a__b%3D1")) == 120
    # The developer's list holds only alpha's 100.
    assert total(login("developer").get("/containers/")) == 100


def test_container_list_rows_per_page(login, teams, host):
    for i in range(30):
        make_container(teams["alpha"], host, f"td-pp-{i:02d}", observed_state="running")
    client = login("admin")

    def rows(html):
        return re.findall(r"td-pp-\d\d", html.split("<tbody", 1)[1].split("</tbody>", 1)[0])

    page = client.get("/containers/?per_page=10&state=running").content.decode()
    assert "page 1 of 3" in page and len(set(rows(page))) == 10
    # The next page, the live rows' poll and the other sizes keep the filters and the size.
    assert 'href="?per_page=10&amp;state=running&page=2"' in page
    assert 'href="?state=running&amp;per_page=25"' in page and "<strong>10</strong>" in page
    second = client.get("/containers/?state=running&per_page=10&page=3").content.decode()
    assert set(rows(second)) == {f"td-pp-{i}" for i in range(20, 30)}
    fragment = client.get(
        "/containers/?per_page=10&page=2&partial=rows", HTTP_HX_REQUEST="true"
    ).content.decode()
    assert len(set(rows("<tbody" + fragment.split("<tbody", 1)[1]))) == 10
    # Any other size is the default 50, never an error or an unbounded page.
    for asked in ("7", "100000", "-1", "x", ""):
        page = client.get(f"/containers/?per_page={asked}").content.decode()
        assert (
            "page 1 of 1" in page and len(set(rows(page))) == 30 and "<strong>50</strong>" in page
        )


def test_live_rows_fragment(login, containers):
    response = login("admin").get("/containers/?partial=rows", HTTP_HX_REQUEST="true")
    html = response.content.decode()
    assert html.startswith("<tbody") and "td-web-a" in html and "<nav" not in html


def test_rows_show_ports_and_never_a_stale_state(login, teams, host):
    c = make_container(teams["alpha"], host, "td-ports", observed_state="running")
    c.spec["network"] = {"ports": [{"container_port": 80, "host_port": 8080}, {"container_port": 53, "protocol": "udp"}]}  # fmt: skip
    c.save(update_fields=["spec"])
    client = login("admin")

    def fragment():
        return client.get("/containers/?partial=rows", HTTP_HX_REQUEST="true").content.decode()

    first = fragment()
    assert "0.0.0.0:8080-&gt;80/tcp, 53/udp" in first and "state-running" in first
    assert fragment() == first  # rendered once, the same text again
    Container.objects.filter(pk=c.pk).update(observed_state="stopped")
    assert "state-stopped" in fragment()  # the rendered rows are keyed by what they show


def test_page_fragments_are_each_users_own_and_never_stale(login, teams, host):
    """The filter form, table head and bulk buttons are kept by what they show: a viewer after
    the admin gets no buttons and only the teams they may see; a new team shows at once."""
    make_container(teams["alpha"], host, "td-frag-a", observed_state="running")
    make_container(teams["beta"], host, "td-frag-b", observed_state="running")
    admin, developer, viewer = login("admin"), login("developer"), login("viewer")
    page = admin.get("/containers/").content.decode()
    assert 'id="bulk-actions"' in page and 'id="select-page"' in page
    assert teams["alpha"].name in page and teams["beta"].name in page
    assert admin.get("/containers/").content.decode().count(teams["beta"].name) == page.count(
        teams["beta"].name
    )
    mine = developer.get("/containers/").content.decode()  # alpha only, its own grants
    assert f">{teams['alpha'].name}</option>" in mine
    assert f">{teams['beta'].name}</option>" not in mine
    looked = viewer.get("/containers/?sort=-state").content.decode()
    assert 'id="bulk-actions"' not in looked and 'id="select-page"' not in looked
    assert 'aria-sort="descending"' in looked and 'href="?sort=state"' in looked
    gamma = type(teams["alpha"]).objects.create(name=f"{teams['alpha'].name}-gamma")
    make_container(gamma, host, "td-frag-g", observed_state="running")
    assert f">{gamma.name}</option>" in admin.get("/containers/").content.decode()


@pytest.mark.parametrize("n", [5, 60])
def test_container_list_costs_a_constant_number_of_queries(login, teams, host, n):
    for i in range(n):
        make_container(teams["alpha"], host, f"td-q-{i}", observed_state="running")
    client = login("developer")
    client.get("/containers/")  # warm the session and caches
    with CaptureQueriesContext(connection) as ctx:
        assert client.get("/containers/").status_code == 200
    assert len(ctx.captured_queries) <= 14, [q["sql"] for q in ctx.captured_queries]
    test_container_list_costs_a_constant_number_of_queries.seen = getattr(
        test_container_list_costs_a_constant_number_of_queries, "seen", {}
    ) | {n: len(ctx.captured_queries)}
    seen = test_container_list_costs_a_constant_number_of_queries.seen
    if len(seen) == 2:
        assert seen[5] == seen[60]


def test_create_form_hides_dangerous_options_from_developers(login):
    page = login("developer").get("/containers/new/").content.decode()
    assert (
        'id="create-form"' in page
        and "dangerous-options" not in page
        and 'name="privileged"' not in page
    )
    page = login("admin").get("/containers/new/").content.decode()
    assert "dangerous-options" in page and 'name="privileged"' in page


def _form(teams, host, **extra):
    data = {
        "image": "busybox",
        "name": "td-new",
        "command": "sleep 1000",
        "team": teams["alpha"].pk,
        "host": host.pk,
    }
    data.update(
        {
            "restart": "no",
            "start": "on",
            "env": "A=1\nB=two words",
            "ports": "8080:80",
            "memory": "64m",
        }
    )
    data.update(extra)
    return data


def test_developer_creates_a_container_through_the_service(login, teams, host):
    response = login("developer").post(
        "/containers/new/", _form(teams, host, labels="app=web", volumes="data:/data")
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    c = Container.objects.get(name="td-new")
    assert c.team == teams["alpha"] and c.desired_state == "running"
    assert c.spec["command"] == ["sleep", "1000"] and c.spec["env"] == ["A=1", "B=two words"]
    assert (
        c.spec["network"]["ports"][0]["host_port"] == 8080
        and c.spec["limits"]["memory"] == 64 * 1024**2
    )
    assert c.spec["mounts"] == [
        {"type": "volume", "source": "data", "target": "/data", "read_only": False, "options": []}
    ]
    # The developer role's default pids limit was applied by the core's policy.
    assert c.spec["limits"]["pids"] == 512
    assert Operation.objects.get().kind == "container.create"
    assert AuditEvent.objects.filter(
        action="container.create", outcome="allowed", actor="td-developer"
    ).exists()


@pytest.mark.parametrize(
    ("extra", "reason"),
    [
        ({"privileged": "on"}, "container.privileged"),
        ({"volumes": "/etc:/host-etc"}, "container.bind_mount"),
        ({"ports": "80:80"}, "container.low_ports"),
        ({"cap_add": "sys_admin"}, "container.cap_add"),
        ({"host_namespaces": "pid"}, "container.host_namespaces"),
        ({"network": "host", "ports": ""}, "container.host_namespaces"),
    ],
)
def test_forged_dangerous_options_are_refused_by_the_server(login, teams, host, extra, reason):
    response = login("developer").post("/containers/new/", _form(teams, host, **extra))
    assert response.status_code == 403
    assert reason in response.content.decode()
    assert not Container.objects.exists() and not Operation.objects.exists()
    event = AuditEvent.objects.get(action="container.create", outcome="denied")
    assert reason in event.reason


def test_invalid_spec_is_shown_and_nothing_created(login, teams, host):
    response = login("developer").post(
        "/containers/new/", _form(teams, host, memory="1k", ports="x:y")
    )
    assert response.status_code == 400
    assert "invalid port mapping" in response.content.decode()
    response = login("developer").post("/containers/new/", _form(teams, host, memory="1k"))
    assert response.status_code == 400 and "minimum memory" in response.content.decode()
    assert not Container.objects.exists()


def test_create_refuses_a_team_of_someone_else(login, teams, host):
    response = login("developer").post(
        "/containers/new/", _form(teams, host, team=teams["beta"].pk)
    )
    assert response.status_code == 400
    assert not Container.objects.exists()


def test_redis_down_answers_503_and_leaves_nothing(login, teams, host, td_broker):
    from config.celery import app as celery_app

    celery_app.conf.broker_url = "redis://127.0.0.1:9/0"
    response = login("developer").post("/containers/new/", _form(teams, host))
    assert response.status_code == 503
    assert "unreachable" in response.content.decode()
    assert not Container.objects.exists() and not Operation.objects.exists()
