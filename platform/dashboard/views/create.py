"""The container create form: parsed by the core's spec parser, decided by the gate in the service."""

from django.contrib import messages
from django.shortcuts import redirect, render
from rest_framework.exceptions import ValidationError

from accounts.models import Team
from config.errors import InvalidRequest, PlatformError
from config.ids import as_id, is_id
from containers import services
from containers.api.spec import parse_spec
from containers.models import Container
from dashboard.decorators import gated
from dashboard.forms import DANGEROUS_FIELDS, ContainerForm, initial_from_spec
from dashboard.permissions import get_visible, may, visible
from hosts.models import Host
from images.models import Image


def _flatten(detail, prefix="") -> list[str]:
    """DRF's nested error detail as 'field: message' lines."""
    if isinstance(detail, dict):
        out = []
        for key, value in detail.items():
            out += _flatten(value, f"{prefix}{key}." if key != "non_field_errors" else prefix)
        return out
    if isinstance(detail, list):
        out = []
        for item in detail:
            out += _flatten(item, prefix)
        return out
    return [f"{prefix.rstrip('.')}: {detail}" if prefix else str(detail)]


@gated("container.create")
def container_create(request):
    """GET the form (dangerous options only for those allowed; ?from=<id> copies a container's
    spec: "duplicate"); POST creates through the service."""
    user = request.user
    teams = visible(Team.objects.all(), user, "team.view")
    hosts = visible(Host.objects.all(), user, "host.view")
    allowed = {name for name, permission in DANGEROUS_FIELDS.items() if may(user, permission)}
    initial = None
    source = request.GET.get("from", "")
    if request.method == "GET" and source:
        if not is_id(source):
            raise InvalidRequest(f"invalid container id {source!r}")
        original = get_visible(
            Container.objects.select_related("team", "host"),
            user,
            as_id(source),
            "container.view",
            "container",
        )
        initial = initial_from_spec(original)
    form = ContainerForm(
        request.POST or None,
        initial=initial,
        teams=teams,
        hosts=hosts,
        allowed_dangerous=allowed,
    )
    errors: list[str] = []
    status = 200 if request.method == "GET" or form.is_valid() else 400
    if request.method == "POST" and not form.is_valid():
        errors = form.all_errors()
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            spec = parse_spec(form.spec_body())
        except ValidationError as err:
            errors, status = _flatten(err.detail), 400
        else:
            try:
                container, _ = services.do_create_container(
                    team=teams.get(pk=data["team"]),
                    host=hosts.get(pk=data["host"]),
                    spec=spec,
                    start=data["start"],
                    acting_user=user,
                    summary={
                        "method": "POST",
                        "path": request.path,
                        "via": "dashboard",
                        "spec": spec,
                    },
                )
            except PlatformError as err:
                # Refused by the gate (already audited), a name conflict or Redis down: say why.
                errors, status = [err.message], err.status
            else:
                messages.success(request, f"container {container.name} created")
                return redirect("dashboard:container_detail", pk=container.pk)
    images = (
        visible(Image.objects.all(), user, "image.view")
        .values_list("repo_tags", flat=True)
        .order_by("-created_at")[:100]
    )
    tags = sorted({tag for row in images for tag in (row or [])})
    context = {
        "form": form,
        "errors": errors,
        "image_tags": tags,
        "hosts": hosts,
        "host_selected": form["host"].value(),
        "duplicate_of": source if initial else "",
        "can_bind": may(user, "container.bind_mount"),
        "can_low_ports": may(user, "container.low_ports"),
    }
    return render(request, "dashboard/containers/create.html", context, status=status)
