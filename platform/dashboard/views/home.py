"""The dashboard: container counts, activity per day, hosts and the latest audit events."""

from datetime import timedelta

from django.db.models import Count, Q
from django.db.models.functions import TruncDate
from django.shortcuts import render
from django.utils import timezone

from audit.models import AuditEvent
from containers.models import Container
from containers.not_removed import NOT_REMOVED
from dashboard.decorators import SIGNED_IN, gated
from dashboard.permissions import may, visible
from hosts.models import Host
from images.models import Image

DAYS = 14
# The doughnut's slices, in order; each is one state, so a card matches the list's state filter.
STATE_GROUPS = {
    "running": ("running",),
    "stopped": ("stopped",),
    "created": ("created",),
    "paused": ("paused",),
    "ghost": ("ghost",),
    "pending": ("pending",),
    "error": ("error",),
    "unknown": ("unknown",),  # on a host that is down
}


def container_counts(user) -> dict[str, int]:
    """Counts per state group of the containers the user may view, in one query."""
    containers = visible(Container.objects.filter(NOT_REMOVED), user, "container.view")
    aggregates = {
        name: Count("id", filter=Q(observed_state__in=states))
        for name, states in STATE_GROUPS.items()
    }
    aggregates["total"] = Count("id")
    return containers.aggregate(**aggregates)


def per_day(queryset, since) -> dict[str, int]:
    """{date iso: count} of rows created since `since`, grouped by day in SQL."""
    rows = (
        queryset.filter(created_at__gte=since)
        .annotate(day=TruncDate("created_at"))
        .values("day")
        .order_by("day")
        .annotate(n=Count("id"))
    )
    return {row["day"].isoformat(): row["n"] for row in rows}


def activity(user) -> dict:
    """Containers and images created per day over the last DAYS days, zero-filled."""
    today = timezone.now().date()
    days = [(today - timedelta(days=i)).isoformat() for i in range(DAYS - 1, -1, -1)]
    since = timezone.now() - timedelta(days=DAYS)
    out = {"days": days, "containers": [0] * DAYS, "images": [0] * DAYS}
    if may(user, "container.view"):
        # Removed rows stay for the audit trail; they are not containers the user has.
        live = Container.objects.filter(NOT_REMOVED)
        counts = per_day(visible(live, user, "container.view"), since)
        out["containers"] = [counts.get(d, 0) for d in days]
    if may(user, "image.view"):
        counts = per_day(visible(Image.objects.all(), user, "image.view"), since)
        out["images"] = [counts.get(d, 0) for d in days]
    return out


@gated(SIGNED_IN)
def home(request):
    """The landing page after login."""
    user = request.user
    counts = container_counts(user) if may(user, "container.view") else None
    hosts = (
        list(visible(Host.objects.all(), user, "host.view")[:20])
        if may(user, "host.view")
        else None
    )
    events = None
    if may(user, "audit.read"):
        events = list(visible(AuditEvent.objects.all(), user, "audit.read").order_by("-seq")[:10])
    context = {
        "counts": counts,
        "chart": {
            "states": {k: counts[k] for k in STATE_GROUPS} if counts else {},
            **activity(user),
        },
        "card_states": ("running", "stopped", "created", "paused", "ghost"),
        "hosts": hosts,
        "events": events,
    }
    return render(request, "dashboard/home.html", context)
