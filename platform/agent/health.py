"""Health checks of this host's running containers (Docker's HEALTHCHECK), run by the agent.

One thread per agent wakes every second, runs the checks that are due on a small pool (a
slow check delays no other), and writes each container's result to its health row: starting
until the first success, healthy after one, unhealthy after `retries` failures in a row
(failures inside the start period do not count, as in Docker). A check comes from the spec,
else from the image's HEALTHCHECK; ["NONE"] turns the image's off. A container that restarts
(a new pid) starts over. Nothing is restarted for being unhealthy: Docker does not either; the
status is for people, `docker ps`, compose's `service_healthy` and rolling updates.
"""

import concurrent.futures
import logging
import threading
import time
from types import SimpleNamespace

from django.db import close_old_connections
from django.utils import timezone

from containers.models import Container
from health.models import LOG_LENGTH, ContainerHealth
from runtime.container import probe
from runtime.errors import BerthError
from runtime.spec_health import HealthCheck

log = logging.getLogger(__name__)

TICK_SECONDS = 1.0
ROWS_EVERY_SECONDS = 3.0  # how often the list of running containers is read again
POOL_SIZE = 4
NS = 1_000_000_000
_RETRY = object()  # "could not tell now": not remembered, looked up on the next refresh


def image_check(config: dict) -> HealthCheck | None:
    """The image's HEALTHCHECK (times in nanoseconds there) as a HealthCheck, or None."""
    raw = (config.get("config") or {}).get("Healthcheck") or {}
    test = raw.get("Test") or []
    if not isinstance(test, list) or not test or test[0] == "NONE":
        return None

    def seconds(key, default):
        value = raw.get(key) or 0
        return max(1.0, value / NS) if isinstance(value, int) and value > 0 else default

    try:
        check = HealthCheck(
            test=[str(t) for t in test],
            interval=seconds("Interval", 30.0),
            timeout=seconds("Timeout", 30.0),
            retries=raw.get("Retries") or 3,
            start_period=seconds("StartPeriod", 0.0) if raw.get("StartPeriod") else 0.0,
        )
        check.validate()
    except (BerthError, TypeError):
        return None
    return check


class _Tracked:
    """What the monitor remembers of one running container between ticks."""

    def __init__(self, row, check: HealthCheck):
        self.container_id = row.id
        self.runtime_id = row.runtime_id
        self.pid = row.pid
        self.check = check
        self.seen = time.monotonic()
        self.due = self.seen + check.interval  # Docker's first check comes one interval in
        self.streak = 0
        self.status = ContainerHealth.Status.STARTING
        self.log: list[dict] = []
        self.running: concurrent.futures.Future | None = None


class HealthMonitor(threading.Thread):
    """Runs the due health checks of this host's running containers; see the module text."""

    def __init__(self, host_name: str, get_runtime):
        super().__init__(name="berth-agent-health", daemon=True)
        self.host_name = host_name
        self.get_runtime = get_runtime
        self.stopping = threading.Event()
        self.pool = concurrent.futures.ThreadPoolExecutor(POOL_SIZE, "berth-health")
        self.tracked: dict[int, _Tracked] = {}
        # (row id, runtime id) -> its check or None, for the running containers only: a
        # container's spec and image are fixed for its runtime id, so each is read once
        # (not the specs of every running container every few seconds).
        self.checks: dict[tuple[int, str], HealthCheck | None] = {}
        self.image_checks: dict[str, HealthCheck | None] = {}
        self.image_of: dict[str, str] = {}  # runtime id -> image id (fixed for a container)
        self.rows_read = 0.0

    def run(self):
        while not self.stopping.is_set():
            try:
                close_old_connections()
                self.tick()
            except Exception as err:  # the database is away: the next tick retries
                log.warning("health checks: %s", err)
            self.stopping.wait(TICK_SECONDS)
        self.pool.shutdown(wait=False, cancel_futures=True)

    def tick(self):
        now = time.monotonic()
        if now - self.rows_read >= ROWS_EVERY_SECONDS:
            self.refresh()
            self.rows_read = now
        for item in list(self.tracked.values()):
            if item.running is None and now >= item.due:
                item.running = self.pool.submit(self.run_check, item)

    def refresh(self):
        """Track the running containers that have a check; forget the others."""
        rows = Container.objects.filter(
            host__name=self.host_name, observed_state=Container.Observed.RUNNING
        ).exclude(runtime_id="")
        running = list(rows.values_list("id", "runtime_id", "pid"))
        new = [row_id for row_id, rid, _ in running if (row_id, rid) not in self.checks]
        for at in range(0, len(new), 500):  # SQLite's limit on bound parameters
            for row in rows.filter(id__in=new[at : at + 500]).only("id", "runtime_id", "spec"):
                check = self.check_of(row)
                if check is not _RETRY:  # the runtime could not say: asked again next time
                    self.checks[(row.id, row.runtime_id)] = check
        alive = {}
        for row_id, rid, pid in running:
            check = self.checks.get((row_id, rid))
            if check is None:  # none, or not known yet
                continue
            known = self.tracked.get(row_id)
            if known is None or (known.runtime_id, known.pid) != (rid, pid):
                # New, or restarted: starting again.
                known = _Tracked(SimpleNamespace(id=row_id, runtime_id=rid, pid=pid), check)
                self.save(known)
            alive[row_id] = known
        self.tracked = alive
        # Only what the running containers need is kept (removed ones are forgotten).
        keys = {(row_id, rid) for row_id, rid, _ in running}
        self.checks = {k: v for k, v in self.checks.items() if k in keys}
        rids = {rid for _, rid, _ in running}
        self.image_of = {k: v for k, v in self.image_of.items() if k in rids}
        images = set(self.image_of.values())
        self.image_checks = {k: v for k, v in self.image_checks.items() if k in images}

    def check_of(self, row) -> HealthCheck | None | object:
        spec_check = (row.spec or {}).get("healthcheck")
        if spec_check:
            try:
                check = HealthCheck.from_dict(spec_check)
            except BerthError:
                return None
            return None if check.argv is None else check
        return self.image_check_of(row.runtime_id)

    def image_check_of(self, runtime_id: str) -> HealthCheck | None | object:
        """The image's check of the container, None, or _RETRY when the runtime could not
        say which image it runs."""
        rt = self.get_runtime()
        if runtime_id not in self.image_of:
            try:
                self.image_of[runtime_id] = rt.state(runtime_id).get("image_id") or ""
            except BerthError:
                return _RETRY
        image_id = self.image_of[runtime_id]
        if image_id not in self.image_checks:
            try:
                config = rt.images.resolve(image_id).config
            except BerthError:
                config = {}
            self.image_checks[image_id] = image_check(config)
        return self.image_checks[image_id]

    def run_check(self, item: _Tracked) -> None:
        """Run one check (in the pool) and record its result."""
        started = timezone.now()
        try:
            code, output = probe.run(
                self.get_runtime(), item.runtime_id, item.check.argv, item.check.timeout
            )
            text = output.decode(errors="replace")
            if code == probe.TIMED_OUT:
                text = f"Health check exceeded timeout ({item.check.timeout:g}s)"
        except BerthError as err:  # stopped meanwhile: the next refresh forgets it
            code, text = -1, str(err)
        try:
            self.record(item, code, text, started)
            close_old_connections()
        except Exception as err:
            log.warning("health of container %s: %s", item.container_id, err)
        finally:
            item.due = time.monotonic() + item.check.interval
            item.running = None

    def record(self, item: _Tracked, code: int, output: str, started) -> None:
        item.log = [
            *item.log,
            {
                "start": started.isoformat(),
                "end": timezone.now().isoformat(),
                "exit_code": code,
                "output": output,
            },
        ][-LOG_LENGTH:]
        in_start_period = time.monotonic() - item.seen < item.check.start_period
        if code == 0:
            item.streak = 0
            item.status = ContainerHealth.Status.HEALTHY
        elif not (in_start_period and item.status == ContainerHealth.Status.STARTING):
            item.streak += 1
            if item.streak >= item.check.retries:
                item.status = ContainerHealth.Status.UNHEALTHY
        self.save(item)

    def save(self, item: _Tracked) -> None:
        ContainerHealth.objects.update_or_create(
            container_id=item.container_id,
            defaults={"status": item.status, "failing_streak": item.streak, "log": item.log},
        )
