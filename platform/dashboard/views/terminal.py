"""The web terminal page; the session itself runs over a WebSocket (dashboard.consumers)."""

from django.conf import settings
from django.shortcuts import render

from containers.models import Container
from dashboard.decorators import gated
from dashboard.permissions import get_visible, may

DEFAULT_COMMAND = "/bin/sh"


@gated("container.view")
def terminal_page(request, pk):
    """xterm.js in the page; the consumer decides and audits when the socket opens."""
    container = get_visible(
        Container.objects.select_related("host"), request.user, pk, "container.view", "container"
    )
    user = request.user
    modes = []
    if may(user, "container.exec", container):
        modes.append("exec")
    if container.spec.get("tty") and may(user, "container.attach", container):
        modes.append("attach")
    mode = (
        request.GET.get("mode") if request.GET.get("mode") in modes else (modes[0] if modes else "")
    )
    context = {
        "c": container,
        "modes": modes,
        "mode": mode,
        "command": request.GET.get("cmd") or DEFAULT_COMMAND,
        "exec_user": request.GET.get("user", ""),
        # The WebSocket server's port in production (config.settings.prod); 0: this origin.
        "ws_port": getattr(settings, "BERTH_WS_PORT", 0),
    }
    return render(
        request, "dashboard/containers/terminal.html", context, status=200 if modes else 403
    )
