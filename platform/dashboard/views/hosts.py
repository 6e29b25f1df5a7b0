"""Hosts page actions: add a host (shows its one-time join token once), cordon, uncordon,
drain, remove; for a host that is gone, cancel its operations or forget it and what it held."""

from datetime import timedelta

from django.contrib import messages
from django.shortcuts import redirect
from django.views.decorators.http import require_POST

from config.errors import InvalidRequest
from dashboard.decorators import gated
from dashboard.permissions import get_visible
from dashboard.views.resources import render_hosts
from hosts import drain as draining
from hosts import enrolment, services
from hosts.api.views import HostCreateSerializer
from hosts.models import Host
from rbac import gate


def _summary(request, **extra) -> dict:
    return {"method": request.method, "path": request.path, "via": "dashboard", **extra}


def _host(request, pk) -> Host:
    return get_visible(Host.objects.all(), request.user, pk, "host.view", "host")


@require_POST
@gated("host.create")
def host_add(request):
    """Enrol a host and show its join token on the hosts page, this once."""
    fields = {"name": request.POST.get("name", "").strip()}
    hours = request.POST.get("hours", "").strip()
    if hours:
        if not hours.isdigit():
            raise InvalidRequest("hours: a whole number from 1 to 24")
        fields["expires_in"] = int(hours) * 3600
    body = HostCreateSerializer(data=fields)
    if not body.is_valid():
        raise InvalidRequest(
            "; ".join(f"{k}: {' '.join(map(str, v))}" for k, v in body.errors.items())
        )
    data = body.validated_data
    decision = gate.require(
        request.user, "host.create", Host(name=data["name"]), summary=_summary(request)
    )
    host, row, secret = enrolment.enrol_host(
        decision,
        name=data["name"],
        ttl=timedelta(seconds=data["expires_in"]),
        summary=_summary(request, name=data["name"]),
    )
    # Rendered, not redirected: the secret must not travel through the session's messages.
    return render_hosts(
        request,
        joined={
            "host": host,
            "token": secret,
            "expires_at": row.expires_at,
            "command": f"scripts/berth-agent --join {request.build_absolute_uri('/')} {secret}",
        },
    )


def _cordon(request, pk, cordoned: bool):
    host = _host(request, pk)
    decision = gate.require(request.user, "host.change", host, summary=_summary(request))
    services.set_cordoned(decision, host, cordoned, summary=_summary(request))
    verb = "cordoned: it takes no new containers" if cordoned else "uncordoned"
    messages.success(request, f"host {host.name} {verb}")
    return redirect("dashboard:hosts")


@require_POST
@gated("host.change")
def host_cordon(request, pk):
    """Cordon: no new containers on this host."""
    return _cordon(request, pk, True)


@require_POST
@gated("host.change")
def host_uncordon(request, pk):
    """Uncordon."""
    return _cordon(request, pk, False)


@require_POST
@gated("host.delete")
def host_remove(request, pk):
    """Remove the host (its key is revoked); refused while it runs containers unless forced."""
    host = _host(request, pk)
    decision = gate.require(request.user, "host.delete", host, summary=_summary(request))
    force = request.POST.get("force") == "1"
    services.remove(decision, host, force=force, summary=_summary(request))
    messages.success(request, f"host {host.name} removed: its key is revoked")
    return redirect("dashboard:hosts")


@require_POST
@gated("host.change")
def host_drain(request, pk):
    """Drain: cordon, then recreate its containers on other hosts with their volumes."""
    host = _host(request, pk)
    decision = gate.require(request.user, "host.change", host, summary=_summary(request))
    if host.revoked_at is not None:
        raise InvalidRequest(f"host {host.name} was removed; nothing can be moved off it")
    report = draining.drain(decision, host, acting_user=request.user, summary=_summary(request))
    moved = ", ".join(f"{m['name']} -> {m['host']}" for m in report.moved) or "nothing"
    messages.success(request, f"host {host.name} drained: moved {moved}")
    for failed in report.failed:
        messages.error(request, f"{failed['name']} stays on {host.name}: {failed['error']}")
    return redirect("dashboard:hosts")


@require_POST
@gated("host.change")
def host_cancel(request, pk):
    """Cancel the operations waiting on a host that does not answer (audited with a count)."""
    host = _host(request, pk)
    decision = gate.require(request.user, "host.change", host, summary=_summary(request))
    count = services.cancel_operations(decision, host, summary=_summary(request))
    messages.success(request, f"{count} operation(s) on {host.name} cancelled")
    return redirect("dashboard:hosts")


@require_POST
@gated("host.delete")
def host_forget(request, pk):
    """Forget a gone host and every row of what it held (audited with names and counts)."""
    host = _host(request, pk)
    decision = gate.require(request.user, "host.delete", host, summary=_summary(request))
    held = services.forget(decision, host, summary=_summary(request))
    messages.success(
        request,
        f"host {host.name} forgotten with {len(held['containers'])} container(s), "
        f"{len(held['networks'])} network(s), {len(held['volumes'])} volume(s) and "
        f"{held['images']} image(s)",
    )
    return redirect("dashboard:hosts")
