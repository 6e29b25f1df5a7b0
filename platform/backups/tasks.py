"""Scheduled backups (Celery beat, queue berth.control): one set, then retention."""

import logging

from celery import shared_task

from backups import conf, retention
from backups.backup import do_backup
from config.errors import PlatformError

log = logging.getLogger(__name__)


@shared_task(name="backups.scheduled_backup")
def scheduled_backup():
    """Write one set to the default target and apply retention; a failure is audited (alarm)."""
    try:
        run = do_backup(trigger="schedule")
    except PlatformError as err:
        # do_backup has already marked the run failed and written the failed audit event.
        log.error("scheduled backup failed: %s", err.message)
        return {"state": "failed", "error": err.message}
    removed = retention.apply(conf.target_dir())
    return {"state": run.state, "set": run.set_id, "removed": removed}


@shared_task(name="backups.run_backup")
def run_backup(run_id, volumes="all", images="refs"):
    """Carry out a backup asked for through the API or the dashboard (its run row exists)."""
    from backups.models import BackupRun

    run = BackupRun.objects.select_related("created_by").filter(pk=run_id, state="running").first()
    if run is None:
        return {"state": "skipped"}
    try:
        do_backup(
            volumes=volumes, images=images, acting_user=run.created_by, trigger=run.trigger, run=run
        )
    except PlatformError as err:
        return {"state": "failed", "error": err.message}
    return {"state": "succeeded", "set": run.set_id}
