"""Users and team members from the dashboard: the API's serializers and gate options, reused."""

from django.contrib import messages
from django.db import transaction
from django.shortcuts import redirect
from django.views.decorators.http import require_POST

from accounts.api.views import UserSerializer
from accounts.models import Membership, Team, User
from config.errors import InvalidRequest
from dashboard.decorators import gated
from dashboard.permissions import get_visible
from rbac import gate
from rbac.grants import forget
from rbac.models import RoleBinding


def _summary(request, **extra) -> dict:
    return {"method": request.method, "path": request.path, "via": "dashboard", **extra}


@require_POST
@gated("user.create")
def user_create(request):
    """A new user with a password (no staff or superuser flags: those go through the API)."""
    data = {
        k: request.POST.get(k, "").strip() for k in ("username", "email", "first_name", "last_name")
    }
    data["password"] = request.POST.get("password", "")
    serializer = UserSerializer(data=data)
    if not serializer.is_valid():
        raise InvalidRequest(
            "; ".join(f"{k}: {' '.join(map(str, v))}" for k, v in serializer.errors.items())
        )
    fields = {k: v for k, v in serializer.validated_data.items() if k != "password"}
    decision = gate.require(
        request.user,
        "user.create",
        User(**fields),
        summary=_summary(request, username=data["username"]),
    )
    with transaction.atomic():
        user = serializer.save()
        gate.record(decision, summary=_summary(request, username=user.username))
    messages.success(request, f"user {user.username} created")
    return redirect("dashboard:users")


def _member_options(team, user_id) -> dict:
    # Adding a member grants them the team's roles: the escalation rule gets the same
    # options as the REST API's TeamViewSet.add_member.
    permissions, paths = set(), set()
    for binding in RoleBinding.objects.filter(team=team).select_related("role"):
        permissions |= set(binding.role.permissions)
        paths |= set(binding.role.bind_paths or ())
    return {
        "subject_user_id": user_id,
        "permissions": sorted(permissions),
        "bind_paths": sorted(paths),
    }


@require_POST
@gated("team.change")
def team_members(request, pk):
    """POST user=<id>&op=add|remove: change a team's members through the gate."""
    team = get_visible(Team.objects.all(), request.user, pk, "team.view", "team")
    user_id = request.POST.get("user", "")
    member = User.objects.filter(pk=user_id).first() if user_id.isdigit() else None
    if member is None:
        raise InvalidRequest("choose a user")
    adding = request.POST.get("op") != "remove"
    options = _member_options(team, member.pk)
    if not adding:
        options["permissions"] = []
    decision = gate.require(
        request.user,
        "team.change",
        team,
        options=options,
        summary=_summary(request, user=member.pk),
    )
    with transaction.atomic():
        if adding:
            Membership.objects.get_or_create(team=team, user=member)
        else:
            Membership.objects.filter(team=team, user=member).delete()
        gate.record(
            decision, summary=_summary(request, user=member.pk, op="add" if adding else "remove")
        )
    forget(member)
    messages.success(
        request, f"{member.username} {'added to' if adding else 'removed from'} {team.name}"
    )
    return redirect("dashboard:teams")
