"""One container: inspect data, actions, logs, live stats and processes.

Changes go through containers.services (the same do_* functions the REST API calls); reads
that need the host (logs, stats, top) are authorized by the gate and sent to the agent the way
the API sends them.
"""

import json
import time

from django.contrib import messages
from django.http import HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from config.errors import InvalidRequest
from containers import services
from containers.api.serializers import RenameSerializer
from containers.models import Container
from dashboard.decorators import gated
from dashboard.permissions import get_visible, may
from dashboard.views import container_migrate
from operations import dispatch
from rbac import gate
from rbac.errors import AccessDenied

# verb -> the observed states in which its button makes sense
VERB_STATES = {
    "start": ("created", "stopped", "error", "ghost"),
    "stop": ("running", "paused"),
    "restart": ("running", "stopped", "created"),
    "kill": ("running",),
    "pause": ("running",),
    "unpause": ("paused",),
    "remove": None,  # always
}
MAX_TAIL = 10000
AUDIT_READS_EVERY = 60  # seconds


def _container(request, pk, action="container.view"):
    return get_visible(
        Container.objects.select_related("team", "host"), request.user, pk, action, "container"
    )


def _summary(request) -> dict:
    return {"method": request.method, "path": request.path, "via": "dashboard"}


def actions_for(user, container) -> list[str]:
    """The verbs whose buttons this user sees on this container in its current state."""
    out = []
    for verb, states in VERB_STATES.items():
        if states is not None and container.observed_state not in states:
            continue
        if may(user, services.ACTION_OF[verb], container):
            out.append(verb)
    return out


def can_terminal(user, container) -> bool:
    """Exec into any container, or attach to one with a TTY."""
    if may(user, "container.exec", container):
        return True
    return bool(container.spec.get("tty")) and may(user, "container.attach", container)


def state_context(user, container) -> dict:
    """What the state panel needs: the container, its buttons and the terminal link."""
    return {
        "c": container,
        "actions": actions_for(user, container),
        "can_terminal": can_terminal(user, container),
    }


@require_GET
@gated("container.view")
def detail(request, pk):
    """The container page; each panel shows only when the gate allows its action."""
    container = _container(request, pk)
    user = request.user
    context = {
        **state_context(user, container),
        "spec_json": json.dumps(container.spec, indent=2, sort_keys=True),
        "can_duplicate": may(user, "container.create"),
        "can_logs": may(user, "container.logs", container),
        "can_stats": may(user, "container.stats", container),
        "can_top": may(user, "container.top", container),
        "can_rename": may(user, "container.change", container),
        **container_migrate.panel_context(user, container),
    }
    return render(request, "dashboard/containers/detail.html", context)


@require_GET
@gated("container.view")
def state_fragment(request, pk):
    """The state badge and action buttons (or, with ?part=inspect, the inspect panel's live
    values: state, PID, ports, network), polled by htmx so the page follows the container."""
    container = _container(request, pk)
    if request.GET.get("part") == "inspect":
        return render(request, "dashboard/containers/_inspect.html", {"c": container})
    return render(
        request, "dashboard/containers/_state.html", state_context(request.user, container)
    )


@require_POST
@gated("container.view")
def action(request, pk):
    """POST action=<verb>: the service decides through the gate, audits, and queues the work."""
    container = _container(request, pk)
    verb = request.POST.get("action", "")
    if verb not in services.LIFECYCLE:
        raise InvalidRequest(f"unknown container action {verb!r}")
    params = {"force": True} if verb == "remove" else {}
    services.do_container_verb(
        container, verb, acting_user=request.user, params=params, summary=_summary(request)
    )
    messages.success(request, f"{verb} of {container.name} queued")
    if verb == "remove":
        return redirect("dashboard:containers")
    return redirect("dashboard:container_detail", pk=container.pk)


@require_POST
@gated("container.change")
def rename(request, pk):
    """POST name=: rename through the same serializer and service as the API."""
    container = _container(request, pk)
    body = RenameSerializer(data={"name": request.POST.get("name", "").strip()})
    if not body.is_valid():
        raise InvalidRequest("name: " + " ".join(map(str, body.errors.get("name", ["invalid"]))))
    old = container.name
    services.do_rename_container(
        container, body.validated_data["name"], acting_user=request.user, summary=_summary(request)
    )
    messages.success(request, f"{old} renamed to {container.name}")
    return redirect("dashboard:container_detail", pk=container.pk)


def _audit_due(request, permission, pk) -> bool:
    """Whether this user's read of `permission` on container `pk` is due for an audit event.

    The page polls logs, stats and processes every few seconds: each poll is decided by the
    gate, a refusal is always audited, and an allowed read once a minute per container and
    session (the first read is always recorded), so the log is not flooded by open tabs.
    """
    now = time.time()
    seen = request.session.get("berth_audited_reads", {})
    key = f"{permission}:{pk}"
    if now - seen.get(key, 0) < AUDIT_READS_EVERY:
        return False
    seen = {k: t for k, t in seen.items() if now - t < AUDIT_READS_EVERY}
    seen[key] = now
    request.session["berth_audited_reads"] = seen
    return True


def _ask_host(request, container, permission, task, params):
    decision = gate.decide(request.user, permission, container, resource="container")
    if not decision.allowed or _audit_due(request, permission, container.pk):
        gate.record(decision, summary=_summary(request))
    if not decision.allowed:
        raise AccessDenied(decision)
    claims = dispatch.decision_claims(decision, object_id=container.pk)
    return dispatch.call_host(container.host, task, [container.pk, params], decision=claims)


def _tail(request) -> int:
    raw = request.GET.get("tail", "200")
    if not raw.isdigit():
        raise InvalidRequest("tail must be a number of lines")
    return min(int(raw), MAX_TAIL)


@require_GET
@gated("container.logs")
def logs(request, pk):
    """The last `tail` lines (stdout and stderr apart), as a fragment htmx can poll to follow."""
    container = _container(request, pk)
    timestamps = request.GET.get("timestamps") == "1"
    result = _ask_host(
        request,
        container,
        "container.logs",
        "agent.container_logs",
        {"tail": _tail(request), "timestamps": timestamps},
    )
    lines = [(stream, ts, text.rstrip("\n")) for stream, ts, text in result.get("lines", [])]
    return render(
        request, "dashboard/containers/_logs.html", {"lines": lines, "timestamps": timestamps}
    )


@require_GET
@gated("container.logs")
def logs_download(request, pk):
    """The log as a text file (up to MAX_TAIL lines), timestamps and stream on each line."""
    container = _container(request, pk)
    result = _ask_host(
        request,
        container,
        "container.logs",
        "agent.container_logs",
        {"tail": MAX_TAIL, "timestamps": True},
    )
    body = "".join(
        f"{ts} {stream} {text}" if text.endswith("\n") else f"{ts} {stream} {text}\n"
        for stream, ts, text in result.get("lines", [])
    )
    response = HttpResponse(body, content_type="text/plain; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{container.name}.log"'
    return response


@require_GET
@gated("container.stats")
def stats(request, pk):
    """One stats sample as JSON, polled by the page's charts."""
    container = _container(request, pk)
    if container.observed_state not in ("running", "paused"):
        return JsonResponse({"running": False})
    sample = _ask_host(request, container, "container.stats", "agent.container_stats", {})
    return JsonResponse({"running": True, **sample})


@require_GET
@gated("container.top")
def top(request, pk):
    """The processes table, as a fragment."""
    container = _container(request, pk)
    if container.observed_state not in ("running", "paused"):
        return render(
            request,
            "dashboard/containers/_top.html",
            {"titles": [], "processes": [], "stopped": True},
        )
    result = _ask_host(request, container, "container.top", "agent.container_top", {})
    context = {"titles": result.get("titles", []), "processes": result.get("processes", [])}
    return render(request, "dashboard/containers/_top.html", context)


def detail_url(container) -> str:
    """The detail page of a container."""
    return reverse("dashboard:container_detail", args=[container.pk])
