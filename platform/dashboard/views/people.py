"""Users and teams from the dashboard: the API's serializers and accounts.services, reused."""

from django.contrib import messages
from django.db import transaction
from django.shortcuts import redirect
from django.views.decorators.http import require_POST

from accounts import services
from accounts.api.views import UserSerializer
from accounts.models import Team, User
from config.errors import InvalidRequest
from dashboard.decorators import gated
from dashboard.permissions import get_visible
from dashboard.views.manage import password_problems
from rbac import gate


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
    # Django's AUTH_PASSWORD_VALIDATORS (common, numeric, similar to the username...), not
    # only the form's minlength.
    problems = password_problems(data["password"], User(**fields))
    if problems:
        raise InvalidRequest("password: " + " ".join(problems))
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


@require_POST
@gated("team.change")
def team_members(request, pk):
    """POST user=<id>&op=add|remove: change a team's members (accounts.services, as the API)."""
    team = get_visible(Team.objects.all(), request.user, pk, "team.view", "team")
    user_id = request.POST.get("user", "")
    member = User.objects.filter(pk=user_id).first() if user_id.isdigit() else None
    if member is None:
        raise InvalidRequest("choose a user")
    adding = request.POST.get("op") != "remove"
    services.do_change_membership(
        team, member, adding=adding, acting_user=request.user, summary=_summary(request)
    )
    messages.success(
        request, f"{member.username} {'added to' if adding else 'removed from'} {team.name}"
    )
    return redirect("dashboard:teams")


@require_POST
@gated("team.create")
def team_create(request):
    """POST name=&description=: a new team."""
    team = services.do_create_team(
        name=request.POST.get("name", ""),
        description=request.POST.get("description", "").strip(),
        acting_user=request.user,
        summary=_summary(request),
    )
    messages.success(request, f"team {team.name} created")
    return redirect("dashboard:teams")


def _flag(request, name):
    value = request.POST.get(name)
    if value not in ("0", "1"):
        raise InvalidRequest(f"{name} must be 0 or 1")
    return value == "1"


@require_POST
@gated("user.change")
def user_flags(request, pk):
    """POST is_active=0|1 and/or is_staff=0|1 for another user (never for oneself)."""
    target = get_visible(User.objects.all(), request.user, pk, "user.view", "user")
    flags = {
        name: _flag(request, name) for name in services.DASHBOARD_USER_FLAGS if name in request.POST
    }
    if not flags:
        raise InvalidRequest("nothing to change: send is_active or is_staff")
    services.do_set_user_flags(target, flags, acting_user=request.user, summary=_summary(request))
    changes = ", ".join(f"{k}={'yes' if v else 'no'}" for k, v in flags.items())
    messages.success(request, f"{target.username}: {changes}")
    return redirect("dashboard:users")
