"""The create form's health check reaches the spec, a duplicate copies it, and the container
page shows the health the host found (issue 23)."""

from containers.models import Container
from health.models import ContainerHealth


def _create(client, teams, host, **extra):
    form = {
        "image": "busybox",
        "name": "td-health",
        "team": teams["alpha"].id,
        "host": host.id,
        "restart": "no",
        "command": "sleep 100",
        **extra,
    }
    return client.post("/containers/new/", form)


def test_health_fields_reach_the_spec_and_duplicate_copies_them(login, teams, host):
    client = login("admin")
    response = _create(
        client,
        teams,
        host,
        health_cmd="wget -q -O- localhost:80",
        health_interval="5",
        health_timeout="2",
        health_retries="4",
        health_start_period="10",
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    made = Container.objects.get(name="td-health")
    assert made.spec["healthcheck"] == {
        "test": ["CMD-SHELL", "wget -q -O- localhost:80"],
        "interval": 5.0,
        "timeout": 2.0,
        "retries": 4,
        "start_period": 10.0,
    }
    copy = client.get(f"/containers/new/?from={made.id}").content.decode()
    assert 'value="wget -q -O- localhost:80"' in copy and 'value="4"' in copy

    ContainerHealth.objects.create(container=made, status="unhealthy", failing_streak=4)
    page = client.get(f"/containers/{made.id}/").content.decode()
    assert "unhealthy" in page


def test_no_command_means_no_health_check_and_bad_numbers_are_refused(login, teams, host):
    client = login("admin")
    assert _create(client, teams, host, health_interval="5").status_code == 302
    assert Container.objects.get(name="td-health").spec.get("healthcheck") is None
    response = _create(client, teams, host, name="td-bad", health_cmd="true", health_interval="0")
    assert response.status_code == 400
    assert "Check every" in response.content.decode()
    assert not Container.objects.filter(name="td-bad").exists()
