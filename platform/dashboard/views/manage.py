"""Administration beyond creating: edit, deactivate, delete and reset users; rename and delete
teams (naming what blocks a delete); edit, delete and duplicate roles; one-page onboarding.

Every change asks the gate with the same escalation options as the REST API and is audited in
the transaction that makes it; passwords pass Django's AUTH_PASSWORD_VALIDATORS.
"""

from django.contrib import messages
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import ProtectedError
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from accounts import services
from accounts.models import Membership, Team, User
from config.errors import Conflict, InvalidRequest
from config.ids import as_id, is_id
from containers.models import Container
from dashboard.decorators import gated
from dashboard.permissions import get_visible, may, visible
from rbac import gate
from rbac.api.views import RoleSerializer
from rbac.grants import forget
from rbac.models import Role, RoleBinding

USER_FIELDS = ("email", "first_name", "last_name")


def _summary(request, **extra) -> dict:
    return {"method": request.method, "path": request.path, "via": "dashboard", **extra}


def password_problems(password: str, user=None) -> list[str]:
    """What Django's password validators say about `password` (empty when it passes)."""
    try:
        validate_password(password, user=user)
    except ValidationError as err:
        return list(err.messages)
    return []


# Users ----------------------------------------------------------------------------------------


@gated("user.change")
def user_edit(request, pk):
    """GET the form; POST name and email, and optionally a new password (validated)."""
    target = get_visible(User.objects.all(), request.user, pk, "user.view", "user")
    errors, status = [], 200
    if request.method == "POST":
        data = {k: request.POST.get(k, "").strip() for k in USER_FIELDS}
        password = request.POST.get("password", "")
        if len(data["email"]) > 254 or any(len(data[k]) > 150 for k in USER_FIELDS[1:]):
            errors.append("a field is too long")
        if password:
            errors += [f"password: {m}" for m in password_problems(password, target)]
        if errors:
            status = 400
        else:
            decision = gate.require(
                request.user,
                "user.change",
                target,
                resource="user",
                options=services.user_change_options(target, data),
                summary=_summary(request, fields=sorted(data), password=bool(password)),
            )
            with transaction.atomic():
                for key, value in data.items():
                    setattr(target, key, value)
                if password:
                    target.set_password(password)
                target.save()
                gate.record(
                    decision,
                    summary=_summary(request, fields=sorted(data), password=bool(password)),
                )
            forget(target)
            done = "saved" + (" and its password reset" if password else "")
            messages.success(request, f"user {target.username} {done}")
            return redirect("dashboard:users")
    context = {
        "target": target,
        "errors": errors,
        "can_delete": may(request.user, "user.delete") and target.pk != request.user.pk,
        "is_self": target.pk == request.user.pk,
    }
    return render(request, "dashboard/admin/user_edit.html", context, status=status)


@require_POST
@gated("user.delete")
def user_delete(request, pk):
    """Delete another user (never yourself); their audit events keep their name."""
    target = get_visible(User.objects.all(), request.user, pk, "user.view", "user")
    decision = gate.require(
        request.user,
        "user.delete",
        target,
        resource="user",
        options=services.user_change_options(target, {}),
        summary=_summary(request, username=target.username),
    )
    if target.pk == request.user.pk:
        raise InvalidRequest("you cannot delete yourself")
    name = target.username
    try:
        with transaction.atomic():
            target.delete()
            gate.record(decision, summary=_summary(request, username=name))
    except ProtectedError as err:
        raise Conflict(f"user {name} cannot be deleted: {blockers(err)}") from None
    messages.success(request, f"user {name} deleted")
    return redirect("dashboard:users")


# Teams ----------------------------------------------------------------------------------------


def blockers(err: ProtectedError) -> str:
    """'3 containers (a, b, c), 1 volume (data)': what a PROTECT foreign key kept."""
    groups: dict[str, list[str]] = {}
    for obj in err.protected_objects:
        groups.setdefault(obj._meta.verbose_name_plural, []).append(str(obj))
    parts = []
    for kind, names in sorted(groups.items()):
        shown = ", ".join(names[:5]) + (", ..." if len(names) > 5 else "")
        parts.append(f"{len(names)} {kind} ({shown})")
    return "it still has " + "; ".join(parts) + "; remove them first"


@require_POST
@gated("team.change")
def team_rename(request, pk):
    """POST name=&description=: rename a team or change its description."""
    team = get_visible(Team.objects.all(), request.user, pk, "team.view", "team")
    name = request.POST.get("name", "").strip()
    description = request.POST.get("description", "").strip()
    if not name or len(name) > 64:
        raise InvalidRequest("a team name is 1 to 64 characters")
    if Team.objects.filter(name=name).exclude(pk=team.pk).exists():
        raise InvalidRequest(f"a team named {name!r} already exists")
    old = team.name
    decision = gate.require(
        request.user, "team.change", team, resource="team", summary=_summary(request)
    )
    with transaction.atomic():
        Team.objects.filter(pk=team.pk).update(name=name, description=description)
        gate.record(decision, summary=_summary(request, old=old, new=name))
    messages.success(request, f"team {old} saved as {name}")
    return redirect("dashboard:teams")


@require_POST
@gated("team.delete")
def team_delete(request, pk):
    """Delete a team that holds nothing live; the message names what blocks it otherwise.

    Rows of removed containers are history (the audit log keeps them): they go with the team.
    """
    team = get_visible(Team.objects.all(), request.user, pk, "team.view", "team")
    decision = gate.require(
        request.user, "team.delete", team, resource="team", summary=_summary(request)
    )
    name = team.name
    try:
        with transaction.atomic():
            Container.objects.filter(team=team, observed_state="removed").delete()
            team.delete()
            gate.record(decision, summary=_summary(request, team=name))
    except ProtectedError as err:
        raise Conflict(f"team {name} cannot be deleted: {blockers(err)}") from None
    messages.success(request, f"team {name} deleted")
    return redirect("dashboard:teams")


# Roles ----------------------------------------------------------------------------------------


def _role_options(role, data) -> dict:
    # The REST API's options (rbac.api.views.RoleViewSet._options): same escalation rule.
    return {
        "permissions": data.get("permissions", role.permissions),
        "bind_paths": data.get("bind_paths", role.bind_paths),
        "role_name": role.name if role.pk else None,
    }


def role_form_context(request, role=None, initial=None, errors=(), title="New role") -> dict:
    """The role form's context: the catalog, the ticked codes and the values shown."""
    from dashboard.views.admin import permission_groups  # noqa: PLC0415  (one catalog view)

    if request.method == "POST":
        post = request.POST
        selected = set(post.getlist("permissions"))
    else:
        post = initial or {}
        selected = set(post.get("permissions", ()))
    return {
        "groups": permission_groups(),
        "selected": selected,
        "errors": list(errors),
        "post": post,
        "role": role,
        "title": title,
    }


@gated("role.manage")
def role_edit(request, pk):
    """Change a custom role's name, description, permissions and bind paths."""
    role = get_visible(Role.objects.all(), request.user, pk, "role.view", "role")
    if role.builtin:
        raise Conflict(f"role {role.name!r} is built in and cannot be changed; duplicate it")
    errors, status = [], 200
    if request.method == "POST":
        paths = [p.strip() for p in request.POST.get("bind_paths", "").splitlines() if p.strip()]
        data = {
            "name": request.POST.get("name", "").strip(),
            "description": request.POST.get("description", "").strip(),
            "permissions": request.POST.getlist("permissions"),
            "bind_paths": paths,
        }
        serializer = RoleSerializer(role, data=data)
        if not serializer.is_valid():
            errors = [f"{k}: {' '.join(map(str, v))}" for k, v in serializer.errors.items()]
            status = 400
        else:
            decision = gate.require(
                request.user,
                "role.manage",
                role,
                resource="role",
                options=_role_options(role, serializer.validated_data),
                summary=_summary(request, body=data),
            )
            with transaction.atomic():
                serializer.save()
                gate.record(decision, summary=_summary(request, body=data))
            messages.success(request, f"role {role.name} saved")
            return redirect("dashboard:roles")
    initial = {
        "name": role.name,
        "description": role.description,
        "permissions": role.permissions,
        "bind_paths": "\n".join(role.bind_paths),
    }
    context = role_form_context(request, role, initial, errors, title=f"Role {role.name}")
    return render(request, "dashboard/admin/role_form.html", context, status=status)


@gated("role.manage")
def role_duplicate(request, pk):
    """The new-role form filled from an existing role (built-in ones too)."""
    role = get_visible(Role.objects.all(), request.user, pk, "role.view", "role")
    initial = {
        "name": f"{role.name}-copy",
        "description": role.description,
        "permissions": role.permissions,
        "bind_paths": "\n".join(role.bind_paths),
    }
    # The form posts to role_create, which validates, asks the gate and creates.
    context = role_form_context(request, None, initial, title=f"New role (copy of {role.name})")
    return render(request, "dashboard/admin/role_form.html", context)


@require_POST
@gated("role.manage")
def role_delete(request, pk):
    """Delete a custom role; refused (naming who holds it) while bindings use it."""
    role = get_visible(Role.objects.all(), request.user, pk, "role.view", "role")
    decision = gate.require(
        request.user,
        "role.manage",
        role,
        resource="role",
        options=_role_options(role, {"permissions": []}),
        summary=_summary(request),
    )
    if role.builtin:
        raise Conflict(f"role {role.name!r} is built in and cannot be deleted")
    holders = [str(b) for b in role.bindings.select_related("user", "team")[:6]]
    if holders:
        shown = ", ".join(holders[:5]) + (", ..." if len(holders) > 5 else "")
        raise Conflict(f"role {role.name} is still bound ({shown}); remove those bindings first")
    name = role.name
    with transaction.atomic():
        gate.record(decision, summary=_summary(request, role=name))
        role.delete()
    messages.success(request, f"role {name} deleted")
    return redirect("dashboard:roles")


# Onboarding -----------------------------------------------------------------------------------


@gated("user.create")
def onboard(request):
    """One page: a new (or existing) person, added to a team, with a role in that team."""
    user = request.user
    teams = visible(Team.objects.all(), user, "team.view")
    roles = visible(Role.objects.all(), user, "role.view")
    errors, status = [], 200
    if request.method == "POST":
        form = {k: request.POST.get(k, "").strip() for k in ("username", "email", "team", "role")}
        password = request.POST.get("password", "")
        team = teams.filter(pk=as_id(form["team"])).first() if is_id(form["team"]) else None
        role = roles.filter(pk=as_id(form["role"])).first() if is_id(form["role"]) else None
        person = User.objects.filter(username=form["username"]).first()
        if not form["username"]:
            errors.append("username: required")
        if team is None:
            errors.append("team: choose a team")
        if role is None:
            errors.append("role: choose a role")
        if person is None:
            if not password:
                errors.append("password: required for a new person")
            else:
                probe = User(username=form["username"], email=form["email"])
                errors += [f"password: {m}" for m in password_problems(password, probe)]
        if errors:
            status = 400
        else:
            _onboard(request, person, form, password, team, role)
            return redirect("dashboard:users")
    context = {"teams": teams, "roles": roles, "errors": errors, "post": request.POST}
    return render(request, "dashboard/admin/onboard.html", context, status=status)


def _onboard(request, person, form, password, team, role):
    """Ask the gate for every step first (each refusal audited), then write them together."""
    user = request.user
    summary = _summary(request, username=form["username"], team=team.name, role=role.name)
    creating = person is None
    if creating:
        person = User(username=form["username"], email=form["email"])
        created = gate.require(user, "user.create", person, resource="user", summary=summary)
    binding = RoleBinding(user=person if not creating else None, role=role, scope_team=team)
    member_opts = services.member_options(team, person.pk)
    joined = gate.require(
        user, "team.change", team, resource="team", options=member_opts, summary=summary
    )
    bound = gate.require(
        user,
        "role.manage",
        binding,
        resource="binding",
        options={
            "subject_user_id": person.pk,
            "subject_team_id": None,
            "permissions": role.permissions,
            "bind_paths": role.bind_paths,
        },
        summary=summary,
    )
    with transaction.atomic():
        if creating:
            person.set_password(password)
            person.save()
            gate.record(created, summary=summary)
        Membership.objects.get_or_create(team=team, user=person)
        gate.record(joined, summary=summary | {"user": person.pk, "op": "add"})
        RoleBinding.objects.get_or_create(
            user=person,
            team=None,
            role=role,
            scope_team=team,
            scope_host=None,
            defaults={"created_by": user},
        )
        gate.record(bound, summary=summary)
    forget(person)
    verb = "created and added" if creating else "added"
    messages.success(request, f"{person.username} {verb} to {team.name} as {role.name}")
