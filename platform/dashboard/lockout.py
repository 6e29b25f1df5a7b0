"""Lock a username (and a noisy address) out after repeated failed logins."""

from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from dashboard.models import LoginFailure

# Per username: a handful of guesses; per address: enough for a shared NAT, not for a spray.
MAX_FAILURES_PER_USER = 5
MAX_FAILURES_PER_ADDRESS = 20
WINDOW = timedelta(minutes=15)


def _limits() -> tuple[int, int, timedelta]:
    user = getattr(settings, "BERTH_LOGIN_MAX_FAILURES", MAX_FAILURES_PER_USER)
    address = getattr(settings, "BERTH_LOGIN_MAX_FAILURES_PER_ADDRESS", MAX_FAILURES_PER_ADDRESS)
    window = timedelta(
        seconds=getattr(settings, "BERTH_LOGIN_LOCKOUT_SECONDS", WINDOW.total_seconds())
    )
    return user, address, window


def normalize(username: str) -> str:
    """Usernames are compared case-insensitively so 'Admin' and 'admin' share one counter."""
    return (username or "").strip().lower()[:150]


def is_locked(username: str, address: str | None) -> bool:
    """True while the username or the address has too many recent failures."""
    per_user, per_address, window = _limits()
    since = timezone.now() - window
    recent = LoginFailure.objects.filter(failed_at__gte=since)
    if recent.filter(username=normalize(username)).count() >= per_user:
        return True
    return bool(address) and recent.filter(address=address).count() >= per_address


def record_failure(username: str, address: str | None) -> None:
    """Remember one failed attempt."""
    LoginFailure.objects.create(username=normalize(username), address=address or None)


def clear(username: str) -> None:
    """A successful login forgets the username's failures (and old rows of everyone)."""
    _, _, window = _limits()
    LoginFailure.objects.filter(username=normalize(username)).delete()
    LoginFailure.objects.filter(failed_at__lt=timezone.now() - 4 * window).delete()
