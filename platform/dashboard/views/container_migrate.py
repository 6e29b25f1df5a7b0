"""The container page's Migrate panel: a picker of eligible hosts, the move, and its progress.

The move is hosts.migrate.migrate (the same service as POST /api/v1/containers/{id}/migrate/),
which asks the gate for container.migrate on both hosts and audits; the form's POST waits
for it while the page polls the migration's operations (progress()) and shows each step.
"""

import datetime

from django.contrib import messages
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST

from config.errors import InvalidRequest
from containers.models import Container
from dashboard.decorators import gated
from dashboard.permissions import get_visible, may
from hosts import migrate as migrating
from hosts import placement
from hosts.models import Host
from hosts.steps import StepFailed
from operations.models import Operation

# The operations a migration is made of, in the order they run, with what the page calls them.
STEPS = {
    "checkpoint.receive": "target ready to receive",
    "container.precopy": "memory sent, freeze, final dump",
    "container.checkpoint": "checkpoint on the source",
    "volume.export": "volume exported",
    "volume.import": "volume imported",
    "checkpoint.import": "restore on the target",
    "container.resume": "resumed on the source (failed)",
    "container.remove": "source copy removed",
}


def _container(request, pk, action):
    return get_visible(
        Container.objects.select_related("team", "host"), request.user, pk, action, "container"
    )


def eligible_hosts(user, container) -> list[Host]:
    """Hosts this container could move to now, where the gate lets `user` move it."""
    if container.observed_state != Container.Observed.RUNNING:
        return []
    found = []
    for host in Host.objects.exclude(pk=container.host_id).order_by("name"):
        if placement.refusal(host):
            continue
        moved = Container(team=container.team, host=host, name=container.name)
        if may(user, "container.migrate", moved):
            found.append(host)
    return found


def panel_context(user, container) -> dict:
    """What the detail page needs for the panel (nothing when the user may not migrate)."""
    if not may(user, "container.migrate", container):
        return {"can_migrate": False}
    return {"can_migrate": True, "migrate_hosts": eligible_hosts(user, container)}


@require_POST
@gated("container.migrate")
def migrate(request, pk):
    """POST host=<name> [mode=precopy|postcopy]: move the container; the service re-checks all."""
    container = _container(request, pk, "container.migrate")
    name = request.POST.get("host", "").strip()
    target = Host.objects.filter(name=name).first()
    if target is None:
        raise InvalidRequest(f"no host {name!r}")
    mode = request.POST.get("mode", "precopy").strip() or "precopy"
    if mode not in migrating.MODES:
        raise InvalidRequest(f"unknown migration mode {mode!r}: use {' or '.join(migrating.MODES)}")
    summary = {"method": request.method, "path": request.path, "via": "dashboard"}
    try:
        moved = migrating.migrate(
            container, target, acting_user=request.user, summary=summary, mode=mode
        )
    except StepFailed as err:
        messages.error(request, f"migration of {container.name} failed: {err}")
    else:
        messages.success(request, f"{moved.name} moved to host {target.name}")
    return redirect("dashboard:container_detail", pk=container.pk)


@require_GET
@gated("container.view")
def progress(request, pk):
    """The steps of the container's migration since ?since= (unix seconds), polled by the page."""
    container = _container(request, pk, "container.view")
    try:
        since = float(request.GET.get("since", "0"))
    except ValueError:
        raise InvalidRequest("since must be a number of seconds") from None
    start = datetime.datetime.fromtimestamp(since, datetime.UTC) - datetime.timedelta(seconds=2)
    ops = (
        Operation.objects.select_related("host")
        .filter(target_type="container", target_id=str(container.pk), kind__in=STEPS)
        .filter(created_at__gte=max(start, timezone.now() - datetime.timedelta(hours=1)))
        .order_by("created_at", "pk")
    )
    steps = [{"op": op, "label": STEPS[op.kind]} for op in ops]
    return render(request, "dashboard/containers/_migrate_progress.html", {"steps": steps})
