"""Connect a container to a network, or disconnect it, from the network's page (queued like the
API's POST /networks/{id}/connect/; the same service decides and audits: networks/joins.py)."""

from django.contrib import messages
from django.shortcuts import redirect
from django.views.decorators.http import require_POST

from config.errors import InvalidRequest
from config.ids import is_id
from containers.models import Container
from dashboard.decorators import gated
from dashboard.permissions import get_visible, visible
from networks import joins
from networks.models import Network


def _summary(request, **extra) -> dict:
    return {"method": request.method, "path": request.path, "via": "dashboard", **extra}


def _network_and_container(request, pk):
    net = get_visible(
        Network.objects.select_related("host", "team"), request.user, pk, "network.view", "network"
    )
    value = request.POST.get("container") or ""
    container = None
    if is_id(value):
        container = (
            visible(
                Container.objects.select_related("host", "team"), request.user, "container.view"
            )
            .filter(pk=value, host_id=net.host_id)
            .exclude(desired_state=Container.Desired.REMOVED)
            .first()
        )
    if container is None:
        raise InvalidRequest("choose a container on this network's host")
    return net, container


@require_POST
@gated("container.change")
def network_connect(request, pk):
    """Queue container.network_connect, with the aliases typed (comma or space separated)."""
    net, container = _network_and_container(request, pk)
    aliases = request.POST.get("aliases", "").replace(",", " ").split()
    joins.do_connect(
        container, net, aliases=aliases, acting_user=request.user, summary=_summary(request)
    )
    messages.success(request, f"connecting {container.name} to {net.name}: queued")
    return redirect("dashboard:network_detail", pk=net.pk)


@require_POST
@gated("container.change")
def network_disconnect(request, pk):
    """Queue container.network_disconnect."""
    net, container = _network_and_container(request, pk)
    joins.do_disconnect(container, net, acting_user=request.user, summary=_summary(request))
    messages.success(request, f"disconnecting {container.name} from {net.name}: queued")
    return redirect("dashboard:network_detail", pk=net.pk)
