"""The agent's health monitor under churn (issue 17): what it remembers follows the running
containers (nothing is left of removed ones), and a refresh reads a container's spec and
image once, not every running container's spec every few seconds."""

from types import SimpleNamespace

from agent.health import HealthMonitor
from django.db.models.signals import post_init

from containers.models import Container
from health.models import ContainerHealth
from runtime.errors import NotFound
from tests.platform.factories import make_container

CHECK = {"test": ["CMD-SHELL", "true"], "interval": 30}


class ImagesRuntime:
    """What the monitor asks a runtime: a container's image, an image's config."""

    def __init__(self):
        self.asked = []
        self.missing = set()
        self.images = SimpleNamespace(resolve=lambda image_id: SimpleNamespace(config={}))

    def state(self, rid):
        self.asked.append(rid)
        if rid in self.missing:
            raise NotFound(rid)
        return {"id": rid, "image_id": "sha256:" + "0" * 64}


def _running(team, host, n, *, check: bool, start=0):
    rows = []
    for i in range(start, start + n):
        row = make_container(
            team, host, f"c{i}", desired_state="running", observed_state="running",
            runtime_id=f"{i:064x}", pid=1000 + i,
        )  # fmt: skip
        if check:
            row.spec = {**row.spec, "healthcheck": CHECK}
            row.save(update_fields=["spec"])
        rows.append(row)
    return rows


def _built(monitor) -> int:
    """Container instances one refresh builds."""
    seen = []

    def count(sender, instance, **_):
        seen.append(instance.pk)

    post_init.connect(count, sender=Container)
    try:
        monitor.refresh()
    finally:
        post_init.disconnect(count, sender=Container)
    return len(seen)


def _monitor(host, rt):
    monitor = HealthMonitor(host.name, lambda: rt)
    monitor.pool.shutdown()  # refresh() alone: no check runs
    return monitor


def test_what_the_monitor_keeps_follows_the_running_containers(teams, host):
    alpha = teams["alpha"]
    rt = ImagesRuntime()
    checked = _running(alpha, host, 2, check=True)
    _running(alpha, host, 3, check=False, start=2)
    monitor = _monitor(host, rt)

    assert _built(monitor) == 5  # each spec read once
    assert set(monitor.tracked) == {row.id for row in checked}
    assert len(monitor.checks) == 5 and len(monitor.image_of) == 3
    assert ContainerHealth.objects.filter(status="starting").count() == 2
    # Nothing new: no spec read again, no image asked again.
    assert _built(monitor) == 0 and len(rt.asked) == 3

    # Churn: every one removed, and others made and removed, many times over.
    for round_ in range(5):
        Container.objects.filter(host=host).update(observed_state="removed", runtime_id="")
        monitor.refresh()
        assert not (monitor.tracked or monitor.checks or monitor.image_of)
        assert not monitor.image_checks
        _running(alpha, host, 4, check=round_ % 2 == 0, start=10 + 10 * round_)
        monitor.refresh()
        assert len(monitor.checks) == 4
        assert len(monitor.tracked) == (4 if round_ % 2 == 0 else 0)
    assert ContainerHealth.objects.count() == 2 + 3 * 4  # one row per checked container


def test_a_restart_starts_over_and_an_unanswered_image_is_asked_again(teams, host):
    alpha = teams["alpha"]
    rt = ImagesRuntime()
    (checked,) = _running(alpha, host, 1, check=True)
    (plain,) = _running(alpha, host, 1, check=False, start=1)
    rt.missing.add(plain.runtime_id)
    monitor = _monitor(host, rt)
    monitor.refresh()
    first = monitor.tracked[checked.id]
    assert (plain.id, plain.runtime_id) not in monitor.checks  # not known: not remembered
    rt.missing.clear()
    monitor.refresh()
    assert (plain.id, plain.runtime_id) in monitor.checks
    assert rt.asked == [plain.runtime_id] * 2

    Container.objects.filter(id=checked.id).update(pid=4242)  # restarted by its policy
    monitor.refresh()
    again = monitor.tracked[checked.id]
    assert again is not first and again.pid == 4242 and again.streak == 0
