"""Read side shared by the API and the dashboard: findings and scores the gate lets a user see,
filtered by the same query parameters, and their CSV/JSON export."""

import csv
import io

from compliance.models import ComplianceRun, Finding, TeamScore
from compliance.models.findings import SEVERITY_ORDER
from config.errors import InvalidRequest
from rbac import gate

FILTERS = ("run", "severity", "check", "object_type", "object_id", "team", "host", "excepted")
EXPORT_FIELDS = (
    "run",
    "check_id",
    "severity",
    "object_type",
    "object_id",
    "object_repr",
    "team",
    "host",
    "detail",
    "excepted",
)


def _id(name, value) -> int:
    if not (value.isascii() and value.isdigit() and len(value) < 19):
        raise InvalidRequest(f"{name} must be an id, got {value!r}")
    return int(value)


def pick_run(params) -> ComplianceRun | None:
    """The run named by ?run=, else the newest finished one."""
    value = (params.get("run") or "").strip()
    if value:
        run = ComplianceRun.objects.filter(pk=_id("run", value)).first()
        if run is None:
            raise InvalidRequest(f"no compliance run {value}")
        return run
    return ComplianceRun.objects.filter(finished_at__isnull=False).first()


def findings(user, params):
    """The findings of one run visible to `user` (compliance.view, in SQL), filtered."""
    run = pick_run(params)
    if run is None:
        return Finding.objects.none()
    qs = gate.restrict(Finding.objects.filter(run=run), user, "compliance.view")
    severity = (params.get("severity") or "").strip()
    if severity:
        wanted = [s for s in severity.split(",") if s]
        unknown = [s for s in wanted if s not in SEVERITY_ORDER]
        if unknown:
            raise InvalidRequest(
                f"unknown severity {unknown[0]!r}; one of {', '.join(SEVERITY_ORDER)}"
            )
        qs = qs.filter(severity__in=wanted)
    if params.get("check"):
        qs = qs.filter(check_id=params["check"])
    if params.get("object_type"):
        qs = qs.filter(object_type=params["object_type"])
    if params.get("object_id"):
        qs = qs.filter(object_id=params["object_id"])
    if params.get("team"):
        qs = qs.filter(team_id=_id("team", params["team"]))
    if params.get("host"):
        qs = qs.filter(host_id=_id("host", params["host"]))
    excepted = (params.get("excepted") or "").strip().lower()
    if excepted in ("1", "true", "yes"):
        qs = qs.filter(excepted=True)
    elif excepted in ("0", "false", "no"):
        qs = qs.filter(excepted=False)
    elif excepted:
        raise InvalidRequest("excepted must be true or false")
    return qs.select_related("team", "host").order_by("severity", "check_id", "object_repr")


def sort_by_severity(rows):
    """Critical first (the database sorts severity names alphabetically)."""
    return sorted(rows, key=lambda f: (SEVERITY_ORDER.get(f.severity, 9), f.check_id))


def scores(user, run):
    """The run's team scores visible to `user`."""
    if run is None:
        return TeamScore.objects.none()
    return gate.restrict(TeamScore.objects.filter(run=run), user, "compliance.view").select_related(
        "team"
    )


def trend(user, limit: int = 30) -> list[dict]:
    """Score over the last `limit` runs, over the teams `user` may see: [{run, at, score}]."""
    runs = list(ComplianceRun.objects.filter(finished_at__isnull=False)[:limit])
    rows = gate.restrict(
        TeamScore.objects.filter(run__in=runs), user, "compliance.view"
    ).values_list("run_id", "evaluations", "failed")
    sums: dict = {}
    for run_id, evaluations, failed in rows:
        total, bad = sums.get(run_id, (0, 0))
        sums[run_id] = (total + evaluations, bad + failed)
    out = []
    for run in reversed(runs):
        total, bad = sums.get(run.pk, (0, 0))
        score = 100.0 if not total else round(100.0 * (total - bad) / total, 1)
        out.append({"run": run.pk, "at": run.started_at.isoformat(), "score": score})
    return out


def finding_dict(f: Finding) -> dict:
    """One finding as exported."""
    return {
        "run": f.run_id,
        "check_id": f.check_id,
        "severity": f.severity,
        "object_type": f.object_type,
        "object_id": f.object_id,
        "object_repr": f.object_repr,
        "team": f.team.name if f.team_id else "",
        "host": f.host.name if f.host_id else "",
        "detail": f.detail,
        "excepted": f.excepted,
    }


def _cell(value) -> str:
    # A cell starting with = + - @ is a formula to spreadsheets: names come from users.
    text = str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def to_csv(rows) -> str:
    """The findings as CSV text with a header row."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(EXPORT_FIELDS)
    for f in rows:
        d = finding_dict(f)
        writer.writerow([_cell(d[k]) for k in EXPORT_FIELDS])
    return out.getvalue()
