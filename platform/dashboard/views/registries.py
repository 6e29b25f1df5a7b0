"""The registries page: configured registries (names, addresses, whether a password is
stored: never the password); admins add and remove them through the API's serializer."""

from django.contrib import messages
from django.db import transaction
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST
from registries.api.serializers import RegistrySerializer
from registries.models import Registry

from dashboard.decorators import gated
from dashboard.permissions import get_visible, may, visible
from rbac import gate


def _summary(request, **extra) -> dict:
    return {"method": request.method, "path": request.path, "via": "dashboard", **extra}


@gated("registry.view")
def registries(request):
    """GET the list; POST (registry.manage) adds one, its password stored encrypted."""
    user = request.user
    errors, status = [], 200
    if request.method == "POST":
        data = {k: request.POST.get(k, "").strip() for k in ("name", "address", "username")}
        data["insecure"] = request.POST.get("insecure") == "on"
        data["password"] = request.POST.get("password", "")
        serializer = RegistrySerializer(data=data, context={"request": request})
        if not serializer.is_valid():
            errors = [f"{k}: {' '.join(map(str, v))}" for k, v in serializer.errors.items()]
            status = 400
        else:
            fields = {k: v for k, v in serializer.validated_data.items() if k != "password"}
            summary = _summary(request, name=data["name"], address=data["address"])
            decision = gate.require(
                user, "registry.manage", Registry(**fields), resource="registry", summary=summary
            )
            with transaction.atomic():
                registry = serializer.save()
                gate.record(decision, summary=summary)
            messages.success(request, f"registry {registry.name} added")
            return redirect("dashboard:registries")
    context = {
        "registries": visible(Registry.objects.all(), user, "registry.view"),
        "can_manage": may(user, "registry.manage"),
        "errors": errors,
        "post": request.POST,
    }
    return render(request, "dashboard/registries.html", context, status=status)


@require_POST
@gated("registry.manage")
def registry_remove(request, pk):
    """Remove a configured registry (its stored credentials go with it)."""
    registry = get_visible(Registry.objects.all(), request.user, pk, "registry.view", "registry")
    decision = gate.require(
        request.user, "registry.manage", registry, resource="registry", summary=_summary(request)
    )
    name = registry.name
    with transaction.atomic():
        gate.record(decision, summary=_summary(request, name=name))
        registry.delete()
    messages.success(request, f"registry {name} removed")
    return redirect("dashboard:registries")
