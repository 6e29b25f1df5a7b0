"""Image changes from the dashboard: import by upload, tag, remove, queued like the API's."""

import re
import uuid

from django.conf import settings
from django.contrib import messages
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from accounts.models import Team
from config.errors import InvalidRequest
from config.ids import is_id
from containers import quotas
from containers.services import check_placement
from dashboard.decorators import gated
from dashboard.permissions import get_visible, visible
from hosts.models import Host
from images import ownership, quota_check
from images.models import Image
from operations.services import do_host_operation
from rbac import gate

# The API's reference syntax (images.api.views.REF_RE).
REF_RE = re.compile(r"^[a-z0-9][a-z0-9._/-]{0,200}(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?$")


def _summary(request, **extra) -> dict:
    return {"method": request.method, "path": request.path, "via": "dashboard", **extra}


def _ref(text: str, required: bool) -> str:
    ref = (text or "").strip()
    if (ref or required) and not REF_RE.match(ref):
        raise InvalidRequest(f"invalid image reference {ref!r} (use name:tag in lower case)")
    return ref


@require_POST
@gated("image.import")
def image_import(request):
    """Store the uploaded tar and queue image.import on the chosen host."""
    user = request.user
    upload = request.FILES.get("archive")
    if upload is None:
        raise InvalidRequest("choose an image archive to upload")
    if upload.size > settings.BERTH_MAX_UPLOAD_BYTES:
        raise InvalidRequest(
            f"the archive is too large (at most {settings.BERTH_MAX_UPLOAD_BYTES} bytes)"
        )
    ref = _ref(request.POST.get("ref", ""), required=False)
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
    decision = gate.require(
        user,
        "image.import",
        Image(host=host, team=team),
        resource="image",
        summary=_summary(request),
    )
    check_placement(decision, host, summary=_summary(request))
    ownership.check_tag_free(user, host, ref, team, summary=_summary(request))
    settings.UPLOAD_DIR.mkdir(parents=True, exist_ok=True)
    path = settings.UPLOAD_DIR / f"{uuid.uuid4().hex}.tar"
    with open(path, "wb") as out:
        for chunk in upload.chunks():
            out.write(chunk)
    try:
        # The team's image quotas, in the transaction that writes the Operation.
        with quotas.guarded(decision, _summary(request, ref=ref, size=upload.size)):
            do_host_operation(
                decision,
                kind="image.import",
                target_type="image",
                host=host,
                team=team,
                params={"path": str(path), "ref": ref or None, "team": team.pk if team else None},
                acting_user=user,
                summary=_summary(request, ref=ref, size=upload.size),
                before=quota_check.before(team, host, refs=[ref], size=upload.size),
            )
    except Exception:
        path.unlink(missing_ok=True)
        raise
    messages.success(request, f"import of {upload.name} queued on {host.name}")
    return redirect("dashboard:images")


@require_POST
@gated("image.tag")
def image_tag(request, pk):
    """Queue image.tag with the new reference."""
    image = get_visible(
        Image.objects.select_related("host", "team"), request.user, pk, "image.view", "image"
    )
    ref = _ref(request.POST.get("ref", ""), required=True)
    decision = gate.require(request.user, "image.tag", image, summary=_summary(request, tag=ref))
    ownership.check_tag_free(
        request.user, image.host, ref, image.team, summary=_summary(request, tag=ref)
    )
    do_host_operation(
        decision,
        kind="image.tag",
        target_type="image",
        target_id=image.pk,
        host=image.host,
        team=image.team,
        params={"tag": ref},
        acting_user=request.user,
        summary=_summary(request, tag=ref),
    )
    messages.success(request, f"tag {ref} queued")
    return redirect("dashboard:image_detail", pk=image.pk)


@require_POST
@gated("image.delete")
def image_delete(request, pk):
    """Queue image.remove (the host refuses while containers use it)."""
    image = get_visible(
        Image.objects.select_related("host", "team"), request.user, pk, "image.view", "image"
    )
    decision = gate.require(request.user, "image.delete", image, summary=_summary(request))
    do_host_operation(
        decision,
        kind="image.remove",
        target_type="image",
        target_id=image.pk,
        host=image.host,
        team=image.team,
        params={"force": False},
        acting_user=request.user,
        summary=_summary(request),
    )
    messages.success(request, f"removal of {image} queued")
    return redirect("dashboard:images")


@gated("image.build")
def image_build(request):
    """The build form; the page's script sends it to the REST API's build and opens the
    operation's progress page (the log streamed, cache hits counted)."""
    user = request.user
    context = {
        "hosts": visible(Host.objects.all(), user, "host.view"),
        "teams": visible(Team.objects.all(), user, "team.view"),
    }
    return render(request, "dashboard/image_build.html", context)
