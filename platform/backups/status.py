"""What the dashboard and the API show about backups: last success, last failure, next run."""

from datetime import timedelta

from django.utils import timezone

from backups import conf
from backups.models import BackupRun


def next_run(now=None):
    """When the daily scheduled backup runs next (UTC)."""
    now = now or timezone.now()
    at = now.replace(hour=conf.schedule_hour(), minute=0, second=0, microsecond=0)
    return at if at > now else at + timedelta(days=1)


def overview() -> dict:
    """Last success, last failure (an alarm when newer than the last success), next run."""
    backups = BackupRun.objects.filter(kind=BackupRun.Kind.BACKUP)
    ok = backups.filter(state=BackupRun.State.SUCCEEDED).first()
    bad = backups.filter(state=BackupRun.State.FAILED).first()
    alarm = bad is not None and (ok is None or bad.started_at > ok.started_at)
    return {"last_success": ok, "last_failure": bad, "alarm": alarm, "next_run": next_run()}
