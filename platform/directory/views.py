"""The dashboard page of group mappings (Administration > Directory)."""

from django.contrib import messages
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from accounts.models import Team
from config.errors import InvalidRequest
from dashboard.decorators import gated
from dashboard.permissions import get_visible, may, visible
from directory import ldap, oidc
from directory.models import SOURCES, DirectoryIdentity, GroupMapping
from directory.services import do_create_mapping, do_delete_mapping
from rbac.models import Role


def _summary(request) -> dict:
    return {"method": request.method, "path": request.path, "via": "dashboard"}


@gated("directory.view")
def mappings(request):
    """List the mappings; holders of directory.manage add and remove them here."""
    errors = []
    if request.method == "POST":
        team_id = request.POST.get("team") or ""
        team = Team.objects.filter(pk=team_id).first() if team_id.isdigit() else None
        role_name = request.POST.get("role") or ""
        role = Role.objects.filter(name=role_name).first() if role_name else None
        if (team_id and team is None) or (role_name and role is None):
            errors.append("choose an existing team and role")
        else:
            try:
                mapping = do_create_mapping(
                    source=request.POST.get("source", ""),
                    group=request.POST.get("group", ""),
                    team=team,
                    role=role,
                    acting_user=request.user,
                    summary=_summary(request),
                )
            except InvalidRequest as err:
                errors.append(err.message)
            else:
                messages.success(request, f"Mapped {mapping}.")
                return redirect("directory:mappings")
    rows = visible(
        GroupMapping.objects.select_related("team", "role"), request.user, "directory.view"
    )
    context = {
        "mappings": rows,
        "sources": SOURCES,
        "teams": Team.objects.all(),
        "roles": Role.objects.all(),
        "can_manage": may(request.user, "directory.manage"),
        "errors": errors,
        "ldap_on": bool(ldap.config()),
        "oidc_on": bool(oidc.config()),
        "directory_users": DirectoryIdentity.objects.count(),
    }
    return render(request, "directory/mappings.html", context, status=400 if errors else 200)


@gated("directory.manage")
@require_POST
def mapping_delete(request, pk):
    """Remove one mapping."""
    mapping = get_visible(
        GroupMapping.objects.select_related("team", "role"),
        request.user,
        pk,
        "directory.manage",
        "directory",
    )
    do_delete_mapping(mapping, acting_user=request.user, summary=_summary(request))
    messages.success(request, f"Removed {mapping}.")
    return redirect("directory:mappings")
