"""agent/boot.py against a real runtime and the database: what it never starts, what it records.

After a simulated reboot the runtime's boot rules would start every `always` container; the
agent keeps down the ones whose row wants them removed and the ones with no row at all
(orphans), writes the new state into the rows, sets desired `running` where Docker's rule
started a container a user had stopped, and records each reap and restart in the audit log.
"""

import os

import pytest
from agent import boot, lookup

from accounts.models import Team, User
from audit.models import AuditEvent
from containers.models import Container
from hosts.models import Host
from tests.runtime.net_runtime import net_runtime
from tests.runtime.reboot_sim import kill_monitor, reboot

pytestmark = [pytest.mark.root, pytest.mark.django_db]


@pytest.fixture
def nrt():
    """A Runtime with its own prefix and roots (removed after the test)."""
    if os.geteuid() != 0:
        pytest.skip("needs root")
    with net_runtime() as rt:
        yield rt


def _row(host, team, user, name, desired):
    spec = {"image": "busybox", "name": name, "command": ["sleep", "1000"]}
    return Container.objects.create(
        team=team,
        host=host,
        name=name,
        image="busybox",
        spec=spec,
        desired_state=desired,
        created_by=user,
    )


def _run(rt, name, label, policy="always"):
    return rt.run(
        {
            "image": "busybox",
            "name": name,
            "command": ["sleep", "1000"],
            "network": {"mode": "none"},
            "restart": {"name": policy},
            "labels": {lookup.LABEL: label} if label else {},
        }
    )["id"]


def test_boot_keeps_removed_and_rowless_containers_down_and_records_the_rest(nrt):
    host = Host.objects.create(name="bootrows")
    team = Team.objects.create(name="bootteam")
    user = User.objects.create_user("bootadmin", password="x")
    wanted = _row(host, team, user, "keep", Container.Desired.RUNNING)
    stopped = _row(host, team, user, "stoppedbyuser", Container.Desired.STOPPED)
    leaving = _row(host, team, user, "leaving", Container.Desired.REMOVED)
    ids = {
        "keep": _run(nrt, "keep", lookup.label_value(wanted)),
        "stopped": _run(nrt, "stoppedbyuser", lookup.label_value(stopped)),
        "leaving": _run(nrt, "leaving", lookup.label_value(leaving)),
        "orphan": _run(nrt, "orphan", f"{host.name}/999999"),
        "other_host": _run(nrt, "elsewhere", "another-host/1"),
        "unlabelled": _run(nrt, "cli-made", None),
    }
    nrt.stop(ids["stopped"], timeout=0)
    reboot(nrt)

    counts = boot.recover(host.name, nrt, startup=True)

    status = {key: nrt.state(cid)["status"] for key, cid in ids.items()}
    assert status == {
        "keep": "running",
        "stopped": "running",  # Docker: always starts at daemon start even after a stop
        "leaving": "stopped",  # its row wants it removed
        "orphan": "stopped",  # no row: adopted or removed by the reconciler, never started
        "other_host": "stopped",  # another host's label in this root
        "unlabelled": "running",  # not the platform's: the runtime's own rules
    }
    assert counts == {"boot": True, "reaped": 5, "restarted": 3, "restart_failed": 0}
    wanted.refresh_from_db()
    stopped.refresh_from_db()
    assert (wanted.observed_state, wanted.runtime_id) == ("running", ids["keep"])
    assert wanted.pid == nrt.state(ids["keep"])["pid"]
    assert (stopped.observed_state, stopped.desired_state) == ("running", "running")
    restarts = AuditEvent.objects.filter(action="container.auto_restart").order_by("seq")
    assert {(e.object_id, e.outcome) for e in restarts} == {
        (str(wanted.pk), "allowed"),
        (str(stopped.pk), "allowed"),
        (ids["unlabelled"], "allowed"),  # no row: named by its runtime id
    }
    assert all(e.reason.startswith("host boot: restart policy always") for e in restarts)
    lost = AuditEvent.objects.filter(action="container.monitor_lost")
    assert lost.count() == 5  # every container that ran when the host went down
    assert all(e.reason == "the host went down while it ran (boot recovery)" for e in lost)


def _stop_asked(container):
    """What the API does at once for a stop: the row wants it stopped (the host's part, the
    operation, comes later through the agent)."""
    Container.objects.filter(pk=container.pk).update(desired_state=Container.Desired.STOPPED)


def test_a_lost_monitor_whose_row_wants_it_stopped_stays_stopped(nrt):
    host = Host.objects.create(name="lostrows")
    team = Team.objects.create(name="lostteam")
    user = User.objects.create_user("lostadmin", password="x")
    row = _row(host, team, user, "loststop", Container.Desired.RUNNING)
    cid = _run(nrt, "loststop", lookup.label_value(row), policy="unless-stopped")
    _stop_asked(row)  # the stop is asked; its operation has not reached the host yet
    kill_monitor(nrt, cid)

    counts = boot.recover(host.name, nrt, startup=False)

    assert (counts["reaped"], counts["restarted"]) == (1, 0)
    assert nrt.state(cid)["status"] == "stopped"
    row.refresh_from_db()
    assert (row.desired_state, row.observed_state) == ("stopped", "stopped")
    # The stop's operation reaches the host, which then boots: unless-stopped stays down.
    nrt.stop(cid)
    reboot(nrt)
    counts = boot.recover(host.name, nrt, startup=True)
    assert counts["boot"] and counts["restarted"] == 0
    assert nrt.state(cid)["status"] == "stopped"
    row.refresh_from_db()
    assert row.desired_state == "stopped"
