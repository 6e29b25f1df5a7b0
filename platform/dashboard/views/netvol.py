"""Create and remove networks and volumes, validated by the API's serializers and queued alike."""

from django.contrib import messages
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from accounts.models import Team
from config.errors import Conflict, InvalidRequest
from containers.services import check_placement
from dashboard.decorators import gated
from dashboard.permissions import get_visible, visible
from hosts.models import Host
from networks.api.views import NetworkCreateSerializer
from networks.models import Network
from operations.models import Operation
from operations.services import do_host_operation
from rbac import gate
from volumes.api.views import VolumeCreateSerializer
from volumes.models import Volume

KINDS = {
    "network": (Network, NetworkCreateSerializer, "dashboard:networks"),
    "volume": (Volume, VolumeCreateSerializer, "dashboard:volumes"),
}


def _summary(request, **extra) -> dict:
    return {"method": request.method, "path": request.path, "via": "dashboard", **extra}


def _choice(queryset, user, action, value, what):
    obj = visible(queryset, user, action).filter(pk=value).first() if str(value).isdigit() else None
    if obj is None:
        raise InvalidRequest(f"choose a {what}")
    return obj


def _create(request, resource: str):
    model, serializer_class, back = KINDS[resource]
    user = request.user
    fields = ("name", "subnet", "gateway") if resource == "network" else ("name",)
    body = serializer_class(
        data={f: request.POST.get(f, "").strip() for f in fields if request.POST.get(f, "").strip()}
    )
    if not body.is_valid():
        raise InvalidRequest(
            "; ".join(f"{k}: {' '.join(map(str, v))}" for k, v in body.errors.items())
        )
    data = dict(body.validated_data)
    data.pop("team", None)
    data.pop("host", None)
    team = _choice(Team.objects.all(), user, "team.view", request.POST.get("team"), "team")
    host = _choice(Host.objects.all(), user, "host.view", request.POST.get("host"), "host")
    obj = model(team=team, host=host, **data)
    options = {"options": obj.options} if resource == "volume" else None
    decision = gate.require(
        user, f"{resource}.create", obj, options=options, summary=_summary(request, name=obj.name)
    )
    # A host that is down, cordoned, removed or not joined takes nothing new (409, audited).
    check_placement(decision, host, summary=_summary(request, name=obj.name))
    if model.objects.filter(host=host, name=obj.name).exists():
        raise Conflict(f"{resource} {obj.name!r} already exists on host {host.name}")

    def save():
        obj.save(force_insert=True)
        return obj.pk

    do_host_operation(
        decision,
        kind=f"{resource}.create",
        target_type=resource,
        host=host,
        team=team,
        acting_user=user,
        summary=_summary(request, name=obj.name),
        before=save,
    )
    messages.success(request, f"{resource} {obj.name} queued for creation on {host.name}")
    return redirect(back)


def _remove(request, resource: str, pk):
    model, _, back = KINDS[resource]
    obj = get_visible(
        model.objects.select_related("host", "team"), request.user, pk, f"{resource}.view", resource
    )
    decision = gate.require(request.user, f"{resource}.delete", obj, summary=_summary(request))
    do_host_operation(
        decision,
        kind=f"{resource}.remove",
        target_type=resource,
        target_id=obj.pk,
        host=obj.host,
        team=obj.team,
        acting_user=request.user,
        summary=_summary(request),
    )
    messages.success(request, f"removal of {resource} {obj.name} queued")
    return redirect(back)


@require_POST
@gated("network.create")
def network_create(request):
    """Queue network.create."""
    return _create(request, "network")


@require_POST
@gated("volume.create")
def volume_create(request):
    """Queue volume.create."""
    return _create(request, "volume")


@require_POST
@gated("network.delete")
def network_remove(request, pk):
    """Queue network.remove."""
    return _remove(request, "network", pk)


@require_POST
@gated("volume.delete")
def volume_remove(request, pk):
    """Queue volume.remove."""
    return _remove(request, "volume", pk)


@gated("operation.view")
def operations(request):
    """The latest operations of a kind prefix (image., network., ...), polled to show progress."""
    prefix = request.GET.get("kind", "")
    qs = visible(Operation.objects.select_related("host"), request.user, "operation.view")
    if prefix:
        qs = qs.filter(kind__startswith=prefix)
    return render(request, "dashboard/_operations.html", {"operations": qs.order_by("-id")[:10]})
