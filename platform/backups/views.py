"""Dashboard page of backups: schedule status (last success, failure alarm, next run), runs,
and a button that queues a backup for whoever holds backup.run."""

from django.contrib import messages
from django.db import transaction
from django.shortcuts import redirect, render

from backups import status as backup_status
from backups.api.views import CONTROL_QUEUE
from backups.models import BackupRun
from config.celery import app as celery_app
from dashboard.decorators import gated
from dashboard.permissions import may
from operations import dispatch
from rbac import gate


@gated("backup.view")
def index(request):
    """GET: status and the last 50 runs; POST (backup.run): queue a backup now."""
    if request.method == "POST":
        gate.authorize(
            request.user,
            "backup.run",
            resource="backup",
            summary={"method": "POST", "path": request.path, "via": "dashboard"},
        )
        dispatch.check_broker()
        with transaction.atomic():
            run = BackupRun.objects.create(
                trigger=BackupRun.Trigger.DASHBOARD, created_by=request.user
            )
            args = [run.pk, ["all"], "refs"]
            transaction.on_commit(
                lambda: celery_app.send_task("backups.run_backup", args=args, queue=CONTROL_QUEUE)
            )
        messages.success(request, "Backup queued.")
        return redirect("backups:index")
    context = {
        "overview": backup_status.overview(),
        "runs": gate.restrict(BackupRun.objects.all(), request.user, "backup.view")[:50],
        "can_run": may(request.user, "backup.run"),
    }
    return render(request, "backups/index.html", context)
