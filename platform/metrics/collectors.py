"""Metrics read at scrape time from the database, the broker and the agents' reports.

Computed when Prometheus asks, in the one process that answers, so they are right whatever the
number of web workers (no per-process gauges to add up).
"""

import logging
import math
from datetime import timedelta

from django.db.models import Count, DurationField, ExpressionWrapper, F, Q, Sum
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
)

from metrics import reports

log = logging.getLogger(__name__)

# Operation latency buckets, in seconds (a start is well under a second, a pull or a
# migration takes minutes).
OPERATION_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)
# Kombu's Redis transport keeps a queue's messages of each priority step in its own list.
_PRIORITY_SUFFIXES = ("", "\x06\x163", "\x06\x166", "\x06\x169")
CONTAINER_LABELS = ["container_id", "name", "team", "host"]

# (metric name, help, report field, kind): what each agent reports per container.
CONTAINER_SERIES = (
    ("berth_container_cpu_seconds_total", "CPU time used.", "cpu_seconds", "counter"),
    ("berth_container_memory_usage_bytes", "Memory in use.", "memory_bytes", "gauge"),
    (
        "berth_container_memory_limit_bytes",
        "Memory limit (absent: unlimited).",
        "memory_limit_bytes",
        "gauge",
    ),
    ("berth_container_pids", "Processes and threads.", "pids", "gauge"),
    (
        "berth_container_network_receive_bytes_total",
        "Bytes received, all interfaces but lo.",
        "rx_bytes",
        "counter",
    ),
    (
        "berth_container_network_transmit_bytes_total",
        "Bytes sent, all interfaces but lo.",
        "tx_bytes",
        "counter",
    ),
    ("berth_container_blkio_read_bytes_total", "Bytes read from block devices.", "blkio_read_bytes", "counter"),
    ("berth_container_blkio_write_bytes_total", "Bytes written to block devices.", "blkio_write_bytes", "counter"),
    ("berth_container_oom_kills_total", "Processes killed for lack of memory.", "oom_kills", "counter"),
)  # fmt: skip


class BerthCollector:
    """A prometheus_client collector: hosts, containers, operations, queues, container stats."""

    def describe(self):
        # Nothing to describe up front: registering must not query the database.
        return []

    def collect(self):
        from hosts.models import Host

        hosts = list(
            Host.objects.filter(revoked_at__isnull=True).values_list("id", "name", "state")
        )
        yield self._hosts_up(hosts)
        yield self._containers()
        yield from self._operations()
        names = [name for _, name, _ in hosts]
        redis_up = GaugeMetricFamily(
            "berth_metrics_redis_up", "Whether the scrape could read the broker (1) or not (0)."
        )
        try:
            depth = self._queue_depth(hosts)
            stats = self._container_stats(names)
            redis_up.add_metric([], 1)
        except Exception as err:  # the broker down must not take the other metrics with it
            log.warning("metrics: broker unreadable: %s", err)
            redis_up.add_metric([], 0)
            depth, stats = None, []
        yield redis_up
        if depth is not None:
            yield depth
        yield from stats

    def _hosts_up(self, hosts):
        from hosts.models import Host

        up = GaugeMetricFamily(
            "berth_host_up", "Whether the host's agent is up (1) or not (0).", labels=["host"]
        )
        for _, name, state in hosts:
            up.add_metric([name], 1 if state == Host.State.UP else 0)
        return up

    def _containers(self):
        from containers.models import Container
        from containers.not_removed import NOT_REMOVED

        family = GaugeMetricFamily(
            "berth_containers",
            "Containers by observed state, team and host (removed ones left out).",
            labels=["team", "host", "state"],
        )
        rows = (
            Container.objects.filter(NOT_REMOVED)
            .values_list("team__name", "host__name", "observed_state")
            .annotate(n=Count("id"))
            .order_by()
        )
        for team, host, state, n in rows:
            family.add_metric([team, host, state], n)
        return family

    def _operations(self):
        from operations.models import Operation

        counts = GaugeMetricFamily(
            "berth_operations", "Operations by kind and state.", labels=["kind", "state"]
        )
        for kind, state, n in (
            Operation.objects.values_list("kind", "state").annotate(n=Count("id")).order_by()
        ):
            counts.add_metric([kind, state], n)
        yield counts

        # Latency of finished operations, from start to finish, as a histogram per kind.
        duration = ExpressionWrapper(
            F("finished_at") - F("started_at"), output_field=DurationField()
        )
        buckets = {
            f"le_{i}": Count("id", filter=Q(took__lte=timedelta(seconds=bound)))
            for i, bound in enumerate(OPERATION_BUCKETS)
        }
        rows = (
            Operation.objects.filter(finished_at__isnull=False, started_at__isnull=False)
            .annotate(took=duration)
            .values("kind")
            .annotate(total=Count("id"), took_sum=Sum("took"), **buckets)
            .order_by()
        )
        family = HistogramMetricFamily(
            "berth_operation_duration_seconds",
            "Time from an operation's start to its end on the host, by kind.",
            labels=["kind"],
        )
        for row in rows:
            cumulative = [
                (_le(bound), row[f"le_{i}"]) for i, bound in enumerate(OPERATION_BUCKETS)
            ] + [("+Inf", row["total"])]
            took = row["took_sum"] or timedelta()
            family.add_metric([row["kind"]], cumulative, max(took.total_seconds(), 0.0))
        yield family

    def _queue_depth(self, hosts):
        family = GaugeMetricFamily(
            "berth_celery_queue_depth",
            "Messages waiting in each host's agent queue.",
            labels=["host"],
        )
        if not hosts:
            return family
        from hosts.models import Host

        queues = dict(Host.objects.filter(revoked_at__isnull=True).values_list("name", "queue"))
        pipe = reports.client().pipeline(transaction=False)
        for name in queues:
            for suffix in _PRIORITY_SUFFIXES:
                pipe.llen(queues[name] + suffix)
        lengths = pipe.execute()
        step = len(_PRIORITY_SUFFIXES)
        for i, name in enumerate(queues):
            family.add_metric([name], sum(lengths[i * step : (i + 1) * step]))
        return family

    def _container_stats(self, host_names):
        from containers.models import Container

        found = reports.read_all(host_names)
        families = {
            field: (CounterMetricFamily if kind == "counter" else GaugeMetricFamily)(
                name.removesuffix("_total") if kind == "counter" else name,
                help_text,
                labels=CONTAINER_LABELS,
            )
            for name, help_text, field, kind in CONTAINER_SERIES
        }
        age = GaugeMetricFamily(
            "berth_agent_report_timestamp_seconds",
            "When each host's agent last reported its containers' usage (Unix time).",
            labels=["host"],
        )
        wanted = {}
        for host, report in found.items():
            if isinstance(report.get("at"), int | float):
                age.add_metric([host], float(report["at"]))
            for pk, sample in report["containers"].items():
                if str(pk).isdigit() and isinstance(sample, dict):
                    wanted[int(pk)] = (host, sample)
        rows = Container.objects.filter(id__in=list(wanted)).values_list(
            "id", "name", "team__name", "host__name"
        )
        for pk, name, team, host in rows:
            reported_by, sample = wanted[pk]
            if host != reported_by:
                continue  # moved since (a migration): the new host reports it
            labels = [str(pk), name, team, host]
            for field, family in families.items():
                value = sample.get(field)
                if (
                    isinstance(value, int | float)
                    and not isinstance(value, bool)
                    and math.isfinite(value)
                ):
                    family.add_metric(labels, value)
        return [age, *families.values()]


def _le(bound: float) -> str:
    return repr(float(bound))
