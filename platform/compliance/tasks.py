"""Scheduled compliance work, for a control-plane worker (never a host agent): it reads and
writes rows only. Beat sends it to the `berth.control` queue (settings CELERY_BEAT_SCHEDULE);
run `celery -A config.celery worker -Q berth.control -I compliance.tasks` beside `celery beat`."""

from celery import shared_task

CONTROL_QUEUE = "berth.control"


@shared_task(name="compliance.run_scheduled", ignore_result=True)
def run_scheduled():
    """Run every compliance check and store the results (the message carries no arguments)."""
    from compliance import services
    from compliance.models import ComplianceRun

    run = services.run_compliance(trigger=ComplianceRun.Trigger.SCHEDULE)
    return {"run": run.pk, "failed": run.failed}


@shared_task(name="compliance.scan_inventories", ignore_result=True)
def scan_inventories():
    """Ask every joined, live host to read the inventories of its images (then they match)."""
    from compliance import inventories

    return {"operations": inventories.scan_everywhere()}


@shared_task(name="compliance.scheduled_rollouts", ignore_result=True)
def scheduled_rollouts():
    """Roll out newer images for the teams that opted in, inside their windows."""
    from compliance import schedule

    return schedule.run_due()
