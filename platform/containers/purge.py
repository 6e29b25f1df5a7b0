"""Purge the rows of containers removed longer ago than BERTH_REMOVED_RETENTION_SECONDS.

A removed container keeps its row (listed with ?state=removed) for a while, then goes: the
audit log holds its history for good. Each host's heartbeat purges its own host's rows (an
agent's database role may only delete those); `manage.py purge_removed_containers` purges
every host's.
"""

from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from containers.models import Container


def purge_removed(host_name: str | None = None, *, now=None, retention=None) -> int:
    """Delete removed containers' rows older than the retention (of one host, or all);
    returns how many went. A retention of 0 keeps them forever."""
    seconds = settings.BERTH_REMOVED_RETENTION_SECONDS if retention is None else retention
    if not seconds or seconds < 0:
        return 0
    cutoff = (now or timezone.now()) - timedelta(seconds=seconds)
    rows = Container.objects.filter(
        observed_state=Container.Observed.REMOVED, updated_at__lt=cutoff
    )
    if host_name is not None:
        rows = rows.filter(host__name=host_name)
    deleted, _ = rows.delete()
    return deleted
