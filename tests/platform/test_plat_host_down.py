"""A host marked down: its containers become `unknown` (rows, ids and desired states kept), and
its agent's first reconcile pass sets each back to what the host reports."""

from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace

from agent import heartbeat, reconcile
from django.utils import timezone

from containers.models import Container
from hosts.models import Host
from runtime.errors import NotFound
from tests.platform.factories import make_container

LABEL = "io.berth.container"


class HostRuntime:
    """What a host's runtime answers to a reconcile pass: list(), reconcile(), images."""

    def __init__(self, states):
        self.states = states
        self.config = SimpleNamespace(networks_dir=Path("/nonexistent/berth-networks"))
        self.images = SimpleNamespace(list=lambda: [])

    def list(self):
        return [dict(s) for s in self.states]

    def state(self, ref):
        for state in self.states:
            if ref in (state["id"], state["name"]):
                return dict(state)
        raise NotFound(ref)

    def reconcile(self):
        return []


def _silent(host):
    stale = timezone.now() - heartbeat.DOWN_AFTER - timedelta(seconds=1)
    Host.objects.filter(id=host.id).update(state=Host.State.UP, last_heartbeat=stale)


def test_mark_down_makes_the_containers_of_a_silent_host_unknown(teams, host):
    alpha = teams["alpha"]
    other = Host.objects.create(name="tp-h2", state=Host.State.UP, last_heartbeat=timezone.now())
    running = make_container(
        alpha, host, "web", desired_state="running", observed_state="running",
        runtime_id="a" * 64, pid=4242,
    )  # fmt: skip
    stopped = make_container(
        alpha, host, "batch", desired_state="stopped", observed_state="stopped", exit_code=3
    )
    pending = make_container(alpha, host, "new", desired_state="running")
    removed = make_container(alpha, host, "old", desired_state="removed", observed_state="removed")
    elsewhere = make_container(
        alpha, other, "web", desired_state="running", observed_state="running"
    )
    _silent(host)

    assert heartbeat.mark_down() == 1
    host.refresh_from_db()
    assert host.state == "down"
    states = dict(Container.objects.values_list("id", "observed_state"))
    assert states[running.id] == states[stopped.id] == "unknown"
    assert (states[pending.id], states[removed.id]) == ("pending", "removed")
    assert states[elsewhere.id] == "running"  # a host that beats keeps its containers
    running.refresh_from_db()
    # Nothing lost: the row keeps its runtime id, pid and desired state for the host's return.
    assert (running.runtime_id, running.pid, running.desired_state) == ("a" * 64, 4242, "running")
    assert Container.objects.count() == 5
    # Once down, a second pass changes nothing.
    assert heartbeat.mark_down() == 0


def test_the_returning_host_reports_its_unknown_containers_back(teams, host):
    alpha = teams["alpha"]
    kept = make_container(
        alpha, host, "web", desired_state="running", observed_state="running",
        runtime_id="b" * 64, pid=4242,
    )  # fmt: skip
    lost = make_container(
        alpha, host, "gone", desired_state="stopped", observed_state="stopped",
        runtime_id="c" * 64,
    )  # fmt: skip
    _silent(host)
    heartbeat.mark_down()
    rt = HostRuntime(
        [
            {
                "id": "b" * 64,
                "name": "web",
                "status": "running",
                "pid": 4242,
                "spec": {"labels": {LABEL: f"{host.name}/{kept.id}"}},
            }
        ]
    )

    counts = reconcile.reconcile_host(host.name, agent_started=timezone.now(), rt=rt)
    kept.refresh_from_db()
    lost.refresh_from_db()
    assert (kept.observed_state, kept.runtime_id, kept.pid) == ("running", "b" * 64, 4242)
    # One the host does not have is a ghost as before: desired stopped, so observed stopped.
    assert lost.observed_state == "stopped"
    assert counts["updated"] == 1 and counts["ghosts"] == 1
    assert Container.objects.filter(host=host).count() == 2
