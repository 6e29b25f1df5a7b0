"""A team's quota usage summed by the database (containers/limits_sql.py) says what
maxima.asked() says of each spec, odd values included, on SQLite and PostgreSQL alike."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from containers import maxima, quotas
from containers.models import Container

pytestmark = pytest.mark.django_db

LIMITS = [
    {"memory": 32 << 20, "cpu_quota": 150000, "cpu_period": 100000},
    {"memory": 1 << 40, "cpu_quota": 50001},  # CPU rounded up, default period
    {"memory": -1, "cpu_quota": -1},  # unlimited
    {"memory": None, "cpu_quota": 20000, "cpu_period": 0},  # a zero period: the default
    {"memory": "64g", "cpu_quota": 1.5},  # not integers: unlimited, as asked() says
    {"memory": 7, "cpu_quota": 1, "cpu_period": 3},
    {},
]


def _row(team, host, name, limits, desired):
    spec = {"image": "busybox", "name": name, "limits": limits}
    row = Container.objects.create(
        team=team, host=host, name=name, image="busybox", spec=spec, desired_state=desired
    )
    # Stored as given (a row written by an older version or by hand), not normalized.
    Container.objects.filter(pk=row.pk).update(spec=spec)
    return spec


def test_usage_sums_what_asked_says(teams, host):
    team = teams["alpha"]
    specs = []
    for i, limits in enumerate(LIMITS):
        specs.append(_row(team, host, f"tq-run-{i}", limits, "running"))
        _row(team, host, f"tq-stopped-{i}", limits, "stopped")  # counted, not summed
    _row(teams["beta"], host, "tq-other", {"memory": 1 << 30}, "running")  # another team
    used = quotas.usage(team)
    asked = [maxima.asked(spec) for spec in specs]
    assert used["memory"] == sum(a["memory"] or 0 for a in asked)
    assert used["cpus"] == sum(a["cpus"] or 0 for a in asked)
    assert used["memory"] == (32 << 20) + (1 << 40) + 7
    assert used["cpus"] == 1500 + 501 + 200 + 334
    assert used["running"] == len(LIMITS) and used["containers"] == 2 * len(LIMITS)


def test_usage_reads_no_spec_and_a_fixed_number_of_queries(teams, host):
    team = teams["alpha"]
    for i in range(30):
        _row(team, host, f"tq-many-{i}", {"memory": 1 << 20}, "running")
    with CaptureQueriesContext(connection) as queries:
        used = quotas.usage(team)
    assert used["memory"] == 30 << 20
    assert len(queries.captured_queries) == 3
    # The rows' specs are summed in SQL, not sent to Python.
    assert not any('"spec" FROM' in q["sql"] for q in queries.captured_queries)
