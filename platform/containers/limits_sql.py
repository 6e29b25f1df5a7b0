"""A container spec's memory and CPU limits read by the database, so that a team's quota usage
is one aggregate query instead of every running container's spec decoded in Python (issue 19:
a create for a team with quotas cost 25 ms of the web's CPU at 10 containers, 49 at 1,000).

Each value is what containers.maxima.asked() makes of the spec: an integer, or NULL where
asked() says unlimited (absent, -1, not an integer)."""

from django.db.models import BigIntegerField, Func, Value
from django.db.models.functions import Coalesce, NullIf

# The keys of spec["limits"] read here; inlined into the SQL, so only these.
KEYS = ("memory", "cpu_quota", "cpu_period")
DEFAULT_CPU_PERIOD = 100000  # the kernel's (and maxima.asked()'s) when the spec names none


class LimitValue(Func):
    """spec["limits"][key] as a big integer; NULL when absent, -1 or not an integer."""

    output_field = BigIntegerField()

    def __init__(self, key: str, field: str = "spec"):
        if key not in KEYS:
            raise ValueError(f"not a limit read in SQL: {key}")
        self.key = key
        super().__init__(field)

    def _column(self, compiler, connection):
        sql, params = compiler.compile(self.source_expressions[0])
        if params:
            raise ValueError("LimitValue reads a column, not an expression with parameters")
        return sql

    def as_sqlite(self, compiler, connection, **extra):
        column, path = self._column(compiler, connection), f"'$.limits.{self.key}'"
        value = f"json_extract({column}, {path})"
        return (
            f"(CASE WHEN json_type({column}, {path}) = 'integer' AND {value} <> -1 "
            f"THEN {value} END)",
            [],
        )

    def as_postgresql(self, compiler, connection, **extra):
        text = f"(({self._column(compiler, connection)}) -> 'limits' ->> '{self.key}')"
        # Nested CASE: PostgreSQL does not promise to test the pattern before casting in an AND.
        return (
            f"(CASE WHEN {text} ~ '^-?[0-9]{{1,18}}$' THEN "
            f"(CASE WHEN {text}::bigint = -1 THEN NULL ELSE {text}::bigint END) END)",
            [],
        )


def asked_memory():
    """The memory limit in bytes (NULL: unlimited)."""
    return LimitValue("memory")


def asked_cpus():
    """Thousandths of a CPU, cpu_quota * 1000 / cpu_period rounded up (NULL: unlimited)."""
    quota = LimitValue("cpu_quota")
    period = Coalesce(
        NullIf(LimitValue("cpu_period"), Value(0)),
        Value(DEFAULT_CPU_PERIOD),
        output_field=BigIntegerField(),
    )
    return (quota * Value(1000) + period - Value(1)) / period
