"""A reconcile pass reads no more rows as removed containers pile up (issue 17's churn soak):
removed rows stay for the retention (a week), and reading them all each pass grew the pass
and the agent's main process with every container ever removed. One whose container the
runtime still lists is still found and deleted."""

from pathlib import Path
from types import SimpleNamespace

from agent import reconcile
from django.db.models.signals import post_init

from containers.models import Container
from tests.platform.factories import make_container

LABEL = "io.berth.container"


class ListedRuntime:
    """A host's runtime as a reconcile pass sees it: list(), state(), delete(), images."""

    def __init__(self, states):
        self.states = states
        self.deleted = []
        self.config = SimpleNamespace(
            networks_dir=Path("/nonexistent/berth-networks"),
            volumes_dir=Path("/nonexistent/berth-volumes"),
        )
        self.images = SimpleNamespace(list=lambda: [])

    def list(self):
        return [dict(s) for s in self.states]

    def state(self, ref):
        from runtime.errors import NotFound

        for state in self.states:
            if ref in (state["id"], state["name"]):
                return dict(state)
        raise NotFound(ref)

    def delete(self, ref, force=False):
        self.deleted.append(ref)
        self.states = [s for s in self.states if ref not in (s["id"], s["name"])]

    def reconcile(self):
        return []


def _listed(host, row, rid, status="running"):
    return {
        "id": rid,
        "name": row.name,
        "status": status,
        "pid": 4242 if status == "running" else None,
        "spec": {"labels": {LABEL: f"{host.name}/{row.id}"}},
    }


def _rows_read(host, rt) -> int:
    """Container instances a pass builds."""
    seen = []

    def count(sender, instance, **_):
        seen.append(instance.pk)

    post_init.connect(count, sender=Container)
    try:
        reconcile.reconcile_host(host.name, rt=rt)
    finally:
        post_init.disconnect(count, sender=Container)
    return len(seen)


def _removed(team, host, n, start=0):
    for i in range(start, start + n):
        make_container(team, host, f"gone{i}", desired_state="removed", observed_state="removed")


def test_removed_rows_do_not_grow_a_pass(teams, host):
    alpha = teams["alpha"]
    live = make_container(
        alpha, host, "web", desired_state="running", observed_state="running",
        runtime_id="a" * 64, pid=4242,
    )  # fmt: skip
    rt = ListedRuntime([_listed(host, live, "a" * 64)])
    _removed(alpha, host, 3)
    before = _rows_read(host, rt)
    _removed(alpha, host, 60, start=3)
    after = _rows_read(host, rt)
    assert before == after == 1  # only the live row, however many were removed
    live.refresh_from_db()
    assert (live.observed_state, live.pid) == ("running", 4242)
    assert rt.deleted == []


def test_a_removed_rows_container_still_listed_is_deleted(teams, host):
    alpha = teams["alpha"]
    _removed(alpha, host, 5)
    stray = make_container(
        alpha, host, "stray", desired_state="removed", observed_state="removed",
        runtime_id="b" * 64,
    )  # fmt: skip
    rt = ListedRuntime([_listed(host, stray, "b" * 64, status="stopped")])
    counts = reconcile.reconcile_host(host.name, rt=rt)
    assert rt.deleted == ["b" * 64]
    assert counts["removed"] == 1 and counts["orphans"] == 0
    stray.refresh_from_db()
    assert stray.observed_state == "removed"


def test_a_pass_decodes_no_json_column_of_a_row_it_leaves_alone(teams, host):
    # Issue 19: decoding each row's spec, labels and network (and the host's info per row)
    # was most of a pass at 1,000 containers; a ghost's spec is still read when it matters.
    alpha = teams["alpha"]
    live = make_container(
        alpha, host, "web", desired_state="running", observed_state="running",
        runtime_id="c" * 64, pid=4242,
    )  # fmt: skip
    gone = make_container(
        alpha, host, "rm", desired_state="running", observed_state="running",
        runtime_id="d" * 64, pid=4343,
    )  # fmt: skip
    Container.objects.filter(pk=gone.pk).update(spec={**gone.spec, "auto_remove": True})
    rt = ListedRuntime([_listed(host, live, "c" * 64)])
    built = []

    def keep(sender, instance, **_):
        built.append(instance)

    post_init.connect(keep, sender=Container)
    try:
        counts = reconcile.reconcile_host(host.name, rt=rt)
    finally:
        post_init.disconnect(keep, sender=Container)
    seen = next(c for c in built if c.pk == live.pk)
    assert {"spec", "labels", "network_info"} <= seen.get_deferred_fields()
    assert counts["removed"] == 1  # the run --rm container, found through its deferred spec
    gone.refresh_from_db()
    assert (gone.desired_state, gone.observed_state) == ("removed", "removed")
    live.refresh_from_db()
    assert (live.observed_state, live.pid) == ("running", 4242)
