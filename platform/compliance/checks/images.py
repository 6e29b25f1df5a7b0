"""Image checks (CIS Docker Benchmark section 4) on the image's config and age.

Each test takes (image, now) where image is {"config": ..., "created": datetime | None, ...}.
"""

from django.conf import settings

from compliance.checks.registry import check


def max_age_days() -> int:
    """Days after which an image counts as not rebuilt (BERTH_COMPLIANCE_IMAGE_MAX_AGE_DAYS)."""
    return int(getattr(settings, "BERTH_COMPLIANCE_IMAGE_MAX_AGE_DAYS", 90))


def _inner(image) -> dict:
    config = image.get("config") or {}
    return config.get("config") or {}


@check(
    "image.stale",
    "Image not rebuilt recently",
    "medium",
    "image",
    "Rebuild the image from an updated base (and roll its containers) at least every few weeks.",
)
def stale(image, now):
    created = image.get("created")
    if created is None:
        return "the image records no creation time"
    days = (now - created).days
    limit = max_age_days()
    return f"built {days} days ago (more than {limit})" if days > limit else None


@check(
    "image.no-user",
    "Image without a USER",
    "medium",
    "image",
    "Add a USER instruction with an unprivileged user to the Dockerfile.",
    cis="4.1",
)
def no_user(image, now):
    user = str(_inner(image).get("User") or "").partition(":")[0]
    return "the image runs as root (no USER)" if user in ("", "0", "root") else None


@check(
    "image.no-healthcheck",
    "Image without a HEALTHCHECK",
    "low",
    "image",
    "Add a HEALTHCHECK instruction to the Dockerfile.",
    cis="4.6",
)
def no_healthcheck(image, now):
    health = _inner(image).get("Healthcheck") or {}
    test = health.get("Test") if isinstance(health, dict) else None
    return None if test and test != ["NONE"] else "no HEALTHCHECK"


@check(
    "image.package-inventory",
    "Image contents unknown",
    "medium",
    "image",
    "Use a base image with a dpkg or apk database, or scan it again; until then nobody can tell "
    "which known vulnerabilities it carries.",
)
def package_inventory(image, now):
    inventory = image.get("inventory")
    if inventory and inventory["status"] != "ok":
        return f"package list unknown: {inventory['error'] or 'unreadable'}"
    return None


@check(
    "image.vulnerabilities",
    "Image carries known vulnerabilities (critical or high)",
    "high",
    "image",
    "Rebuild or pull the image with the fixed package versions, then roll its containers "
    "(POST /api/v1/compliance/rollouts/).",
)
def vulnerabilities(image, now):
    counts = image.get("advisories") or {}
    serious = counts.get("critical", 0) + counts.get("high", 0)
    if serious:
        return f"{serious} critical or high advisories match its packages"
    return None


@check(
    "image.base-outdated",
    "A base image has a newer digest",
    "medium",
    "image",
    "Rebuild the image from its recipe (POST /api/v1/compliance/recipes/{id}/rebuild/), then "
    "roll its containers; or opt the team in to scheduled rollouts.",
)
def base_outdated(image, now):
    newer = image.get("base_newer") or []
    return f"newer base image(s) in the registry: {', '.join(newer)}" if newer else None
