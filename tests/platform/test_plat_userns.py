"""`--userns host` is a dangerous option: the gate, the agent's recheck, the Docker API mapping.

User namespaces are on by default (docs/userns.md); asking for the host's needs
container.host_namespaces, and every decision is audited.
"""

import pytest
from agent import policy_gate
from dockerapi import translate

from audit.models import AuditEvent
from containers.models import Container
from operations.models import Operation
from runtime.errors import InvalidSpec

pytestmark = pytest.mark.django_db

USERNS_HOST = {"namespaces": {"user": "host"}}


def _create(client, spec, team="tp-alpha"):
    body = {"team": team, "host": "tp-h1", "spec": {"image": "busybox", **spec}}
    return client.post("/api/v1/containers/", body, format="json")


def test_developer_is_refused_userns_host_with_a_clear_message(api, host):
    response = _create(api("developer"), USERNS_HOST)
    assert response.status_code == 403, response.content
    message = response.json()["error"]["message"]
    assert "--userns host" in message and "root on the host" in message
    assert "container.host_namespaces" in message
    event = AuditEvent.objects.filter(actor="developer", action="container.create").latest("seq")
    assert event.outcome == "denied" and "--userns host" in event.reason
    assert not Container.objects.exists() and not Operation.objects.exists()


def test_admin_may_ask_for_userns_host_and_it_is_audited(api, host):
    response = _create(api("admin"), USERNS_HOST)
    assert response.status_code == 202, response.content
    assert Container.objects.get().spec["namespaces"] == {"user": "host"}
    assert AuditEvent.objects.filter(
        actor="admin", action="container.create", outcome="allowed"
    ).exists()


def test_private_or_left_out_needs_nothing_and_a_join_value_is_a_400(api, host):
    client = api("developer")
    assert _create(client, {}).status_code == 202
    assert _create(client, {"namespaces": {"user": "private"}}).status_code == 202
    response = _create(client, {"namespaces": {"user": "container:other"}})
    assert response.status_code == 400
    assert "namespace user must be 'private' (the default) or 'host'" in response.content.decode()


def _stored(teams, host, spec, user, labels=None, name="u1"):
    return Container.objects.create(
        team=teams["alpha"],
        host=host,
        name=name,
        image="busybox",
        spec={"image": "busybox", "labels": labels or {}, **spec},
        created_by=user,
    )


def test_the_agent_rechecks_userns_host_and_sets_the_team_range_key(teams, host, users):
    stored = _stored(teams, host, USERNS_HOST, users["developer"])
    with pytest.raises(InvalidSpec, match="--userns host"):
        policy_gate.checked_spec(stored)
    Container.objects.filter(pk=stored.pk).update(created_by=users["admin"])
    stored.refresh_from_db()
    assert policy_gate.checked_spec(stored).namespaces == {"user": "host"}
    # The range's key is the team's, whatever label a request carried.
    labels = {policy_gate.USERNS_LABEL: "team-999"}
    sneaky = _stored(teams, host, {}, users["admin"], labels=labels, name="u2")
    labels = policy_gate.checked_spec(sneaky).labels
    assert labels[policy_gate.USERNS_LABEL] == f"team-{teams['alpha'].pk}"


def test_docker_usernsmode_maps_onto_the_spec():
    base = {"Image": "busybox"}
    spec = translate.to_spec(dict(base, HostConfig={"UsernsMode": "host"}))
    assert spec["namespaces"] == {"user": "host"}
    spec = translate.to_spec(dict(base, HostConfig={"UsernsMode": ""}))
    assert "user" not in spec.get("namespaces", {})
