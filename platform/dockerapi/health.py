"""Health checks in Docker's words: Config.Healthcheck (nanoseconds) into the spec's
`healthcheck` (seconds), and the health row back as inspect's State.Health and ps's status."""

from dockerapi.errors import bad_request

NS = 1_000_000_000
_FIELDS = {"Test", "Interval", "Timeout", "Retries", "StartPeriod", "StartInterval"}


def _seconds(raw: dict, key: str):
    value = raw.get(key)
    if value in (None, 0):
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise bad_request(f"Healthcheck.{key} must be a duration in nanoseconds")
    return value / NS


def to_spec(raw) -> dict | None:
    """The spec's healthcheck of a create body's Healthcheck (None: the image's)."""
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise bad_request("Healthcheck must be an object")
    unknown = sorted(set(raw) - _FIELDS)
    if unknown:
        raise bad_request(f"unknown field {unknown[0]!r} in Healthcheck")
    test = raw.get("Test") or []
    if not isinstance(test, list) or not all(isinstance(t, str) for t in test):
        raise bad_request("Healthcheck.Test must be a list of strings")
    if not test:
        return None  # inherit the image's, as Docker does
    check: dict = {"test": test}
    for key, field in (("Interval", "interval"), ("Timeout", "timeout")):
        seconds = _seconds(raw, key)
        if seconds is not None:
            check[field] = seconds
    start = _seconds(raw, "StartPeriod")
    if start is not None:
        check["start_period"] = start
    retries = raw.get("Retries")
    if retries not in (None, 0):
        if isinstance(retries, bool) or not isinstance(retries, int):
            raise bad_request("Healthcheck.Retries must be an integer")
        check["retries"] = retries
    return check


def to_docker(spec_check: dict | None) -> dict | None:
    """Config.Healthcheck of inspect from the spec's healthcheck."""
    if not spec_check:
        return None
    return {
        "Test": spec_check.get("test") or [],
        "Interval": int(spec_check.get("interval", 30) * NS),
        "Timeout": int(spec_check.get("timeout", 30) * NS),
        "Retries": spec_check.get("retries", 3),
        "StartPeriod": int(spec_check.get("start_period", 0) * NS),
    }


def health_of(container):
    """The container's health row, or None (no check, or not run yet)."""
    from health.models import ContainerHealth

    try:
        return container.health
    except ContainerHealth.DoesNotExist:
        return None


def state_health(container) -> dict | None:
    """State.Health of inspect: Status, FailingStreak and the last results."""
    row = health_of(container)
    if row is None:
        return None
    return {
        "Status": row.status,
        "FailingStreak": row.failing_streak,
        "Log": [
            {
                "Start": entry.get("start"),
                "End": entry.get("end"),
                "ExitCode": entry.get("exit_code"),
                "Output": entry.get("output", ""),
            }
            for entry in row.log
        ],
    }


def status_suffix(container) -> str:
    """ " (healthy)" and the like after ps's "Up 5 minutes", as Docker shows it."""
    row = health_of(container)
    if row is None:
        return ""
    return " (health: starting)" if row.status == "starting" else f" ({row.status})"
