"""Dashboard pages of registries: a pull form and a live progress page (bars and build log)."""

from django.shortcuts import redirect, render

from accounts.models import Team
from config.errors import InvalidRequest
from config.ids import is_id
from dashboard.decorators import gated
from dashboard.permissions import get_visible, visible
from hosts.models import Host
from operations.models import Operation
from rbac import gate
from registries import refs, services
from registries.models import Registry


def _summary(request) -> dict:
    return {"method": request.method, "path": request.path, "via": "dashboard"}


@gated("image.pull")
def pull_page(request):
    """GET: the pull form; POST: queue the pull and show its progress."""
    user = request.user
    if request.method == "POST":
        ref = (request.POST.get("ref") or "").strip()
        if not refs.REF_RE.match(ref):
            raise InvalidRequest(f"invalid image reference {ref!r}")
        host = (
            visible(Host.objects.all(), user, "host.view")
            .filter(pk=request.POST.get("host") or 0)
            .first()
        )
        if host is None:
            raise InvalidRequest("choose a host")
        team_id = request.POST.get("team") or ""
        team = (
            visible(Team.objects.all(), user, "team.view").filter(pk=team_id).first()
            if is_id(team_id)
            else None
        )
        op = services.do_pull_image(
            user,
            ref=ref,
            host=host,
            team=team,
            registry=request.POST.get("registry") or None,
            summary=_summary(request),
        )
        return redirect("dashboard:operation_progress", pk=op.pk)
    context = {
        "hosts": visible(Host.objects.all(), user, "host.view"),
        "teams": visible(Team.objects.all(), user, "team.view"),
        "registries": gate.restrict(Registry.objects.all(), user, "registry.use"),
    }
    return render(request, "registries/pull.html", context)


@gated("operation.view")
def progress_page(request, pk):
    """Layer progress bars and the log of one operation, refreshed from the API while it runs."""
    op = get_visible(
        Operation.objects.select_related("host"), request.user, pk, "operation.view", "operation"
    )
    gate.authorize(request.user, "operation.view", op, summary=_summary(request))
    return render(request, "registries/progress.html", {"op": op})
