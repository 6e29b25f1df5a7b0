"""Berth's own site checks: the broker's password, DEBUG, the audit chain, tokens, second
factors, heartbeats. Each test takes `now` and returns (evaluations, failures), a failure being
a SiteFailure naming the object it is about."""

from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import urlsplit

from django.conf import settings

from compliance.checks.registry import check

TOKEN_MAX_DAYS = 365


@dataclass(frozen=True)
class SiteFailure:
    """A failed site check on one object (the site itself, a host, a token, a user)."""

    object_type: str
    object_id: str
    object_repr: str
    detail: str
    team_id: int | None = None
    host_id: int | None = None


def _site(detail: str) -> SiteFailure:
    return SiteFailure("site", "site", "this Berth site", detail)


@check(
    "site.redis-auth",
    "Redis without authentication",
    "critical",
    "site",
    "Give Redis a password (berth-up does; or set REDIS_URL with one) and bind it to trusted addresses.",
    cis="",
)
def redis_auth(now):
    url = getattr(settings, "CELERY_BROKER_URL", "") or ""
    parts = urlsplit(url)
    if url and not parts.password:
        return 1, [
            _site(f"the broker URL {parts.scheme}://{parts.hostname}:{parts.port} has no password")
        ]
    return 1, []


@check(
    "site.debug",
    "DEBUG is on",
    "high",
    "site",
    "Run with the production settings (config.settings.prod): DEBUG off.",
)
def debug(now):
    return 1, [_site("settings.DEBUG is True")] if settings.DEBUG else []


@check(
    "site.audit-chain",
    "Audit chain not intact",
    "critical",
    "site",
    "Run `manage.py verify_audit_chain`, find out who altered the log, restore it from a backup.",
)
def audit_chain(now):
    from audit.services import verify_chain

    problems = verify_chain()
    if problems:
        return 1, [_site(f"{len(problems)} problem(s), first: {problems[0]}")]
    return 1, []


@check(
    "site.token-expiry",
    f"API token valid for more than {TOKEN_MAX_DAYS} days",
    "medium",
    "site",
    "Revoke the token and create one with a shorter expiry.",
)
def token_expiry(now):
    from accounts.models import ApiToken

    live = ApiToken.objects.filter(revoked_at__isnull=True, expires_at__gt=now)
    far = now + timedelta(days=TOKEN_MAX_DAYS)
    failures = [
        SiteFailure("token", str(pk), f"{name} ({prefix}…)", f"expires {expires:%Y-%m-%d}")
        for pk, name, prefix, expires in live.filter(expires_at__gt=far).values_list(
            "pk", "name", "prefix", "expires_at"
        )
    ]
    return live.count(), failures


@check(
    "site.admin-second-factor",
    "Administrator without a second factor",
    "high",
    "site",
    "Enrol a second factor for every administrator.",
)
def admin_second_factor(now):
    # Berth has no second factor yet: the check applies once one exists (django-otp devices).
    try:
        from django_otp import user_has_device
    except ImportError:
        return 0, []
    from django.contrib.auth import get_user_model

    admins = get_user_model().objects.filter(is_active=True, is_superuser=True)
    failures = [
        SiteFailure("user", str(u.pk), u.username, "no second factor")
        for u in admins
        if not user_has_device(u)
    ]
    return admins.count(), failures


@check(
    "site.host-heartbeat",
    "Host without heartbeats",
    "high",
    "site",
    "Start the host's agent (scripts/berth-agent) or remove the host.",
)
def host_heartbeat(now):
    from hosts.models import Host

    silent_after = timedelta(seconds=settings.BERTH_HEARTBEAT_GRACE_SECONDS)
    hosts = list(
        Host.objects.filter(revoked_at__isnull=True)
        .exclude(state=Host.State.PENDING)  # not joined yet: no agent to hear from
        .values("pk", "name", "last_heartbeat")
    )
    failures = []
    for h in hosts:
        beat = h["last_heartbeat"]
        if beat is None or now - beat > silent_after:
            when = "never" if beat is None else f"last at {beat:%Y-%m-%d %H:%M:%S} UTC"
            failures.append(
                SiteFailure(
                    "host", str(h["pk"]), h["name"], f"no heartbeat ({when})", host_id=h["pk"]
                )
            )
    return len(hosts), failures
