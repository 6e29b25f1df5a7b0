"""Stacks: containers grouped by docker-compose's project label, stopped, started or removed
together. Each container's verb goes through the same service, gate and audit as the
container list's bulk actions (containers.services.do_container_verb)."""

from django.contrib import messages
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from config.errors import InvalidRequest, PlatformError
from containers import services
from containers.models import Container
from containers.not_removed import NOT_REMOVED
from dashboard.decorators import gated
from dashboard.permissions import may, visible
from dashboard.views.containers import MAX_BULK, natural_key

PROJECT_LABEL = "com.docker.compose.project"
SERVICE_LABEL = "com.docker.compose.service"
# Stack verb -> container verb (remove forces, as `docker-compose down` stops first).
STACK_VERBS = {"start": "start", "stop": "stop", "remove": "remove"}


def _stack_containers(user, project: str | None = None):
    """The containers of compose projects the user may view (removed rows left out)."""
    qs = Container.objects.filter(NOT_REMOVED).filter(labels__has_key=PROJECT_LABEL)
    if project is not None:
        qs = qs.filter(**{f"labels__{PROJECT_LABEL}": project})
    return visible(qs.select_related("team", "host"), user, "container.view")


def group(containers) -> list[dict]:
    """[{name, containers, running, teams}] by project name, containers by service in order."""
    stacks: dict[str, dict] = {}
    for container in containers:
        project = str((container.labels or {}).get(PROJECT_LABEL, ""))
        stack = stacks.setdefault(project, {"name": project, "containers": [], "teams": set()})
        container.service = (container.labels or {}).get(SERVICE_LABEL, "")
        stack["containers"].append(container)
        stack["teams"].add(container.team.name)
    out = []
    for name in sorted(stacks, key=natural_key):
        stack = stacks[name]
        stack["containers"].sort(key=lambda c: natural_key(c.name))
        stack["running"] = sum(c.observed_state == "running" for c in stack["containers"])
        stack["teams"] = sorted(stack["teams"])
        out.append(stack)
    return out


@gated("container.view")
def stack_list(request):
    """Every compose project with a container the user may view, with its containers."""
    user = request.user
    context = {
        "stacks": group(_stack_containers(user)),
        "allowed": [
            verb
            for verb, action in (("start", "start"), ("stop", "stop"), ("remove", "delete"))
            if may(user, f"container.{action}")
        ],
    }
    return render(request, "dashboard/stacks.html", context)


@require_POST
@gated("container.view")
def stack_action(request, project: str):
    """Start, stop or remove every container of one stack the user may view, one at a time
    through the gate; a refusal of one does not stop the others."""
    verb = request.POST.get("action", "")
    if verb not in STACK_VERBS:
        raise InvalidRequest(f"unknown stack action {verb!r}")
    chosen = list(_stack_containers(request.user, project).order_by("id")[:MAX_BULK])
    if not chosen:
        messages.error(request, f"no stack {project!r}")
        return redirect(reverse("dashboard:stacks"))
    if verb == "start":
        # Oldest first: compose created dependencies (depends_on) before their dependents.
        chosen.sort(key=lambda c: (c.created_at, c.id))
    else:
        chosen.sort(key=lambda c: (c.created_at, c.id), reverse=True)
    params = {"force": True} if verb == "remove" else {}
    summary = {"method": "POST", "path": request.path, "via": "dashboard stack", "stack": project}
    done, refused = 0, []
    for container in chosen:
        try:
            services.do_container_verb(
                container, STACK_VERBS[verb], acting_user=request.user, params=params,
                summary=summary | {"ids": [container.pk]},
            )  # fmt: skip
            done += 1
        except PlatformError as err:
            # Each refusal is audited by the gate.
            refused.append(f"{container.name}: {err.message}")
    if done:
        messages.success(request, f"{verb} queued for {done} container(s) of stack {project}")
    for line in refused[:10]:
        messages.error(request, line)
    return redirect(reverse("dashboard:stacks"))
