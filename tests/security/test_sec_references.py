"""References by name are bound once, at the gate, to a live object of the caller's team.

The sequence of issue 16: team alpha had a container `victim`, removed it; team beta now runs
its own `victim` on the same host. Alpha asking to join `container:victim` (any namespace,
the network mode, or a link) must be refused and audited, with nothing written or queued. The
same for a volume or a network whose name another team holds. Alpha's own running container
is bound by its runtime id, which is what the agent receives.
"""

import pytest
from agent import policy_gate

from audit.models import AuditEvent
from containers import references
from containers.models import Container
from networks.models import Network
from operations.models import Operation
from runtime.errors import InvalidSpec
from tests.platform.factories import make_container
from volumes.models import Volume

pytestmark = pytest.mark.django_db

ALPHA_RID = "a" * 64
BETA_RID = "b" * 64


@pytest.fixture
def stale_victim(teams, host):
    """Alpha's removed `victim`, and beta's live, running `victim` on the same host."""
    old = make_container(
        teams["alpha"],
        host,
        "victim",
        observed_state=Container.Observed.REMOVED,
        desired_state=Container.Desired.REMOVED,
        runtime_id="c" * 64,
    )
    live = make_container(
        teams["beta"],
        host,
        "victim",
        observed_state=Container.Observed.RUNNING,
        desired_state=Container.Desired.RUNNING,
        runtime_id=BETA_RID,
    )
    return old, live


def _create(api, host, spec, user="developer"):
    body = {"team": "ts-alpha", "host": host.name, "spec": {"image": "busybox", **spec}}
    return api(user).post("/api/v1/containers/", body, format="json")


JOINS = {
    "pid": {"namespaces": {"pid": "container:victim"}},
    "ipc": {"namespaces": {"ipc": "container:victim"}},
    "uts": {"namespaces": {"uts": "container:victim"}},
    "cgroup": {"namespaces": {"cgroup": "container:victim"}},
    "network.mode": {"network": {"mode": "container:victim"}},
    "link": {"network": {"links": ["victim:db"]}},
}


@pytest.mark.parametrize("kind", sorted(JOINS))
def test_a_stale_name_never_reaches_another_teams_container(api, host, stale_victim, kind):
    before = Container.objects.count()
    response = _create(api, host, JOINS[kind])
    assert response.status_code == 403, response.content
    assert "victim" in response.json()["error"]["message"]
    assert "removed" in response.json()["error"]["message"]
    assert Container.objects.count() == before
    assert not Operation.objects.exists()
    event = AuditEvent.objects.filter(action="container.create").latest("id")
    assert event.outcome == "denied" and "victim" in event.reason


@pytest.mark.parametrize("kind", sorted(JOINS))
def test_another_teams_name_is_refused_like_a_missing_one(api, host, teams, kind):
    make_container(teams["beta"], host, "victim", observed_state="running", runtime_id=BETA_RID)
    response = _create(api, host, JOINS[kind])
    assert response.status_code == 403
    # No probing: the message is the one for a container that does not exist.
    assert "no container 'victim' of this team" in response.json()["error"]["message"]
    assert not Operation.objects.exists()


@pytest.mark.parametrize("ref", ["victim", BETA_RID, "1"])
def test_admin_may_not_join_across_teams_either(api, host, teams, ref):
    # Joining binds two containers of one team: even a global admin names a team for the new
    # container, and only that team's containers can be joined.
    beta = make_container(teams["beta"], host, "victim", observed_state="running")
    Container.objects.filter(pk=beta.pk).update(runtime_id=BETA_RID)
    ref = str(beta.pk) if ref == "1" else ref
    response = _create(api, host, {"namespaces": {"pid": f"container:{ref}"}}, user="admin")
    assert response.status_code == 403, response.content
    assert not Operation.objects.exists()


def test_own_running_container_is_bound_by_runtime_id(api, host, teams, stale_victim):
    make_container(teams["alpha"], host, "mine", observed_state="running", runtime_id=ALPHA_RID)
    spec = {
        "namespaces": {"pid": "container:mine", "ipc": "container:mine"},
        "network": {"links": ["mine"]},
    }
    response = _create(api, host, spec)
    assert response.status_code == 202, response.content
    stored = Container.objects.get(pk=response.json()["container"]["id"]).spec
    assert stored["namespaces"] == {
        "pid": f"container:{ALPHA_RID}",
        "ipc": f"container:{ALPHA_RID}",
    }
    assert stored["network"]["links"] == [f"{ALPHA_RID}:mine"]


def test_network_mode_of_own_container_is_bound(api, host, teams):
    make_container(teams["alpha"], host, "mine", observed_state="running", runtime_id=ALPHA_RID)
    response = _create(api, host, {"network": {"mode": "container:mine"}})
    assert response.status_code == 202, response.content
    stored = Container.objects.get(pk=response.json()["container"]["id"]).spec
    assert stored["network"]["mode"] == f"container:{ALPHA_RID}"


def test_joining_a_container_that_is_not_running_is_refused(api, host, teams):
    make_container(teams["alpha"], host, "idle", observed_state="stopped", runtime_id=ALPHA_RID)
    make_container(teams["alpha"], host, "new", observed_state="pending")
    for ref in ("idle", "new"):
        response = _create(api, host, {"namespaces": {"pid": f"container:{ref}"}})
        assert response.status_code == 403
        assert "is not running" in response.json()["error"]["message"]
    assert not Operation.objects.exists()


def test_a_name_that_looks_like_an_id_is_refused(api, host):
    response = _create(api, host, {"name": BETA_RID})
    assert response.status_code == 400
    assert "look like a full id" in str(response.json())


def test_a_volume_name_reused_by_another_team_is_refused(api, host, teams):
    # Alpha's volume `data` was removed (its row went); beta made its own `data` since.
    Volume.objects.create(team=teams["beta"], host=host, name="data", state="ready")
    spec = {"mounts": [{"type": "volume", "source": "data", "target": "/data"}]}
    response = _create(api, host, spec)
    assert response.status_code == 403
    assert "volume 'data' belongs to another team" in response.json()["error"]["message"]
    assert not Operation.objects.exists()


def test_a_new_volume_becomes_a_row_of_the_team_that_no_other_team_can_mount(api, host, teams):
    spec = {"mounts": [{"type": "volume", "source": "fresh", "target": "/data"}]}
    assert _create(api, host, spec).status_code == 202
    volume = Volume.objects.get(host=host, name="fresh")
    assert volume.team == teams["alpha"]
    response = api("admin").post(
        "/api/v1/containers/",
        {"team": "ts-beta", "host": host.name, "spec": {"image": "busybox", **spec}},
        format="json",
    )
    assert response.status_code == 403
    assert "belongs to another team" in response.json()["error"]["message"]


def test_a_network_name_reused_by_another_team_is_refused(api, host, teams):
    Network.objects.create(team=teams["beta"], host=host, name="backend", state="ready")
    response = _create(api, host, {"network": {"networks": ["backend"]}})
    assert response.status_code == 403
    assert "network 'backend' belongs to another team" in response.json()["error"]["message"]
    assert not Operation.objects.exists()


# -- the agent's check on the stored spec (defense in depth) ---------------------------------


def _stored(teams, host, spec, user):
    return Container.objects.create(
        team=teams["alpha"],
        host=host,
        name="joiner",
        image="busybox",
        spec={"image": "busybox", **spec},
        created_by=user,
    )


@pytest.mark.parametrize(
    "spec",
    [
        {"namespaces": {"pid": "container:victim"}},  # a name: never looked up on the host
        {"namespaces": {"pid": f"container:{BETA_RID}"}},  # beta's runtime id
        {"network": {"mode": f"container:{BETA_RID}"}},
        {"network": {"links": [f"{BETA_RID}:db"]}},
        {"mounts": [{"type": "volume", "source": "theirs", "target": "/d"}]},
        {"network": {"networks": ["theirs"]}},
    ],
)
def test_the_agent_refuses_a_spec_whose_references_are_not_bound_to_its_team(
    teams, host, users, stale_victim, spec
):
    Volume.objects.create(team=teams["beta"], host=host, name="theirs")
    Network.objects.create(team=teams["beta"], host=host, name="theirs")
    container = _stored(teams, host, spec, users["admin"])
    with pytest.raises(InvalidSpec, match="refused by the host policy"):
        policy_gate.checked_spec(container)


def test_the_agent_refuses_a_join_whose_target_was_removed_since(teams, host, users):
    target = make_container(
        teams["alpha"], host, "mine", observed_state="running", runtime_id=ALPHA_RID
    )
    container = _stored(
        teams, host, {"namespaces": {"pid": f"container:{ALPHA_RID}"}}, users["admin"]
    )
    policy_gate.checked_spec(container)  # bound and live: fine
    Container.objects.filter(pk=target.pk).update(desired_state="removed")
    with pytest.raises(InvalidSpec, match="not a live container of this team"):
        policy_gate.checked_spec(container)


def test_container_refs_lists_every_kind():
    spec = {
        "namespaces": {"pid": "container:a", "ipc": "private", "uts": "host"},
        "network": {"mode": "container:b", "links": ["c:alias", "d"]},
    }
    assert references.container_refs(spec) == [
        ("namespaces.pid", "a"),
        ("network.mode", "b"),
        ("network.links", "c"),
        ("network.links", "d"),
    ]
