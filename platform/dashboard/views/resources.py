"""Images, networks, volumes and hosts: lists and details, filtered by the gate."""

from django.core.paginator import Paginator
from django.shortcuts import render

from accounts.models import Team
from config.errors import NotFound
from containers.models import Container
from containers.not_removed import NOT_REMOVED
from dashboard.decorators import gated
from dashboard.permissions import get_visible, may, visible
from hosts import counting
from hosts import services as host_services
from hosts.models import Host
from images.models import Image
from networks.models import Network
from operations.models import Operation
from volumes.models import Volume

PAGE_SIZE = 50


def _page(request, qs):
    return Paginator(qs, PAGE_SIZE).get_page(request.GET.get("page"))


def _ops(user, kind: str) -> dict:
    return {"can_operations": may(user, "operation.view"), "ops_kind": kind}


def _create_context(user, resource: str) -> dict:
    """Create/remove buttons and the choices of the create form, as the gate allows."""
    can_create = may(user, f"{resource}.create")
    context = {
        "can_create": can_create,
        "can_delete": may(user, f"{resource}.delete"),
        **_ops(user, f"{resource}."),
    }
    if can_create:
        context["teams"] = visible(Team.objects.all(), user, "team.view")
        context["hosts"] = visible(Host.objects.all(), user, "host.view")
    return context


@gated("image.view")
def images(request):
    """Images on every host the user may see, with import, tag and remove where allowed."""
    user = request.user
    qs = visible(Image.objects.select_related("host", "team"), user, "image.view").order_by(
        "host__name", "-created_at"
    )
    context = {
        "page": _page(request, qs),
        "can_import": may(user, "image.import"),
        "can_pull": may(user, "image.pull"),
        "can_build": may(user, "image.build"),
        "can_registries": may(user, "registry.view"),
        "can_tag": may(user, "image.tag"),
        "can_delete": may(user, "image.delete"),
        "hosts": visible(Host.objects.all(), user, "host.view")
        if may(user, "image.import")
        else [],
        "teams": visible(Team.objects.all(), user, "team.view")
        if may(user, "image.import")
        else [],
        **_ops(user, "image."),
    }
    return render(request, "dashboard/images.html", context)


@gated("image.view")
def image_detail(request, pk):
    """One image: tags, layers and the history of its config."""
    image = get_visible(
        Image.objects.select_related("host", "team"), request.user, pk, "image.view", "image"
    )
    config = image.config or {}
    context = {
        "image": image,
        "config": config.get("config", {}),
        "history": config.get("history", []),
        "layers": (config.get("rootfs") or {}).get("diff_ids", []),
        "can_tag": may(request.user, "image.tag", image),
        "can_delete": may(request.user, "image.delete", image),
    }
    return render(request, "dashboard/image_detail.html", context)


@gated("network.view")
def networks(request):
    """Networks of the teams the user may see."""
    qs = visible(Network.objects.select_related("host", "team"), request.user, "network.view")
    context = {
        "page": _page(request, qs),
        "builtin": BUILTIN_NETWORKS,
        **_create_context(request.user, "network"),
    }
    return render(request, "dashboard/networks.html", context)


@gated("volume.view")
def volumes(request):
    """Volumes of the teams the user may see."""
    qs = visible(Volume.objects.select_related("host", "team"), request.user, "volume.view")
    context = {"page": _page(request, qs), **_create_context(request.user, "volume")}
    return render(request, "dashboard/volumes.html", context)


@gated("host.view")
def hosts(request):
    """Hosts, their agent state and how many visible containers each runs."""
    return render_hosts(request)


def render_hosts(request, joined=None, status=200):
    """The hosts page; `joined` holds a new host's join token to show this once."""
    user = request.user
    rows = list(visible(Host.objects.all(), user, "host.view"))
    counts = counting.per_host(
        visible(Container.objects.filter(observed_state="running"), user, "container.view")
    )
    waiting = counting.per_host(
        Operation.objects.filter(host__in=rows, state__in=("pending", "running"))
    )
    for host in rows:
        host.running = counts.get(host.id, 0)
        host.answers = host_services.answers(host)
        host.waiting = waiting.get(host.id, 0)
    context = {
        "hosts": rows,
        "joined": joined,
        "can_create": may(user, "host.create"),
        "can_change": may(user, "host.change"),
        "can_delete": may(user, "host.delete"),
    }
    return render(request, "dashboard/hosts.html", context, status=status)


BUILTIN_NETWORKS = {
    "bridge": "the default network: containers that name no network get an address here",
    "host": "the host's own network stack (no isolation; needs container.host_namespaces)",
    "none": "a loopback interface only",
}


def _attached(user, host_filter, test) -> list:
    """Live containers the user may view (on the hosts `host_filter` keeps) whose network
    spec passes `test`; the JSON test runs in Python (SQLite has no JSON list contains)."""
    rows = (
        visible(Container.objects.filter(NOT_REMOVED), user, "container.view")
        .filter(**host_filter)
        .select_related("host", "team")
        .only("id", "name", "spec", "network_info", "observed_state", "host__name", "team__name")
        .order_by("name")
    )
    return [c for c in rows if test((c.spec or {}).get("network") or {})]


@gated("network.view")
def network_detail(request, pk):
    """One network: its subnet, gateway, owner, host and the containers attached to it."""
    net = get_visible(
        Network.objects.select_related("host", "team"), request.user, pk, "network.view", "network"
    )
    attached = _attached(
        request.user, {"host_id": net.host_id}, lambda n: net.name in (n.get("networks") or [])
    )
    # Containers of the network's team on its host that may join it (bridge mode, not in it).
    joinable = _attached(
        request.user,
        {"host_id": net.host_id, "team_id": net.team_id},
        lambda n: (
            (n.get("mode") or "bridge") == "bridge" and net.name not in (n.get("networks") or [])
        ),
    )
    context = {
        "net": net,
        "builtin": False,
        "containers": attached,
        "joinable": [c for c in joinable if may(request.user, "container.change", c)],
        "can_change": [c.pk for c in attached if may(request.user, "container.change", c)],
    }
    return render(request, "dashboard/network_detail.html", context)


@gated("network.view")
def network_builtin(request, name):
    """A built-in network (bridge, host, none) on every host: what it is and who uses it."""
    if name not in BUILTIN_NETWORKS:
        raise NotFound(f"no built-in network {name!r}")

    def uses(spec_net) -> bool:
        mode = spec_net.get("mode") or "bridge"
        if name == "bridge":
            return mode == "bridge" and not spec_net.get("networks")
        return mode == name

    context = {
        "net": {"name": name, "about": BUILTIN_NETWORKS[name]},
        "builtin": True,
        "containers": _attached(request.user, {}, uses),
    }
    return render(request, "dashboard/network_detail.html", context)
