"""Administration: users, teams, roles (custom roles from permissions), bindings, API tokens.

Writes use the core's serializers for validation and the gate with the same options as the REST
API (so the Kubernetes escalation rule of rbac.checks applies to both), audited in the same
transaction as the change.
"""

from django.contrib import messages
from django.db import transaction
from django.db.models import Prefetch
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_POST

from accounts.api.views import TokenCreateSerializer
from accounts.models import ApiToken, Team, User
from config.errors import InvalidRequest
from config.ids import as_id
from containers import quotas
from dashboard.decorators import gated
from dashboard.permissions import get_visible, may, visible
from hosts.models import Host
from rbac import catalog, gate
from rbac.api.views import BindingSerializer, RoleSerializer
from rbac.grants import forget
from rbac.models import Role, RoleBinding


def _summary(request, **extra) -> dict:
    return {"method": request.method, "path": request.path, "via": "dashboard", **extra}


def _drf_errors(serializer) -> list[str]:
    out = []
    for field, problems in serializer.errors.items():
        for problem in problems if isinstance(problems, list) else [problems]:
            out.append(str(problem) if field == "non_field_errors" else f"{field}: {problem}")
    return out


@gated("user.view")
def users(request):
    """Users with their teams and direct role bindings."""
    rows = (
        visible(User.objects.all(), request.user, "user.view")
        .prefetch_related(
            "teams", Prefetch("role_bindings", queryset=RoleBinding.objects.select_related("role"))
        )
        .order_by("username")
    )
    context = {
        "users": rows,
        "can_create": may(request.user, "user.create"),
        "can_change": may(request.user, "user.change"),
        # Onboarding also adds a member and binds a role: shown to who may do all three.
        "can_onboard": all(
            may(request.user, a) for a in ("user.create", "team.change", "role.manage")
        ),
    }
    return render(request, "dashboard/admin/users.html", context)


@gated("team.view")
def teams(request):
    """Teams the user may see, with their members."""
    rows = list(visible(Team.objects.prefetch_related("members"), request.user, "team.view"))
    for team in rows:
        # What each team uses, beside its quota where it has one (containers/quotas.py).
        used = quotas.usage(team)
        team.usage_rows = [
            {"key": key, "used": _shown(key, used[key]), "quota": _quota(team, key)}
            for key in quotas.KEYS
        ]
    can_change = may(request.user, "team.change")
    people = User.objects.filter(is_active=True).only("id", "username") if can_change else []
    context = {
        "teams": rows,
        "can_change": can_change,
        "can_create": may(request.user, "team.create"),
        "can_delete": may(request.user, "team.delete"),
        "people": people,
    }
    return render(request, "dashboard/admin/teams.html", context)


def _shown(key, value):
    if key in ("memory", "image_bytes", "volume_bytes"):
        return f"{value / 1024**2:.0f} MiB"
    if key == "cpus":
        return f"{value / 1000:g}"
    return value


def _quota(team, key):
    quota = (team.quotas or {}).get(key)
    return None if quota is None else _shown(key, quota)


def permission_groups() -> list[tuple[str, list[str]]]:
    """The catalog as (resource, [codes]) for the role form's checkboxes."""
    return [(res, [f"{res}.{verb}" for verb in verbs]) for res, verbs in catalog.RESOURCES.items()]


@gated("role.view")
def roles(request):
    """Every role and its permissions."""
    rows = visible(Role.objects.all(), request.user, "role.view")
    return render(
        request,
        "dashboard/admin/roles.html",
        {"roles": rows, "can_manage": may(request.user, "role.manage")},
    )


@gated("role.manage")
def role_create(request):
    """Build a custom role from permissions; the gate refuses granting what the user lacks."""
    errors, status = [], 200
    selected = request.POST.getlist("permissions")
    if request.method == "POST":
        paths = [p.strip() for p in request.POST.get("bind_paths", "").splitlines() if p.strip()]
        data = {
            "name": request.POST.get("name", "").strip(),
            "description": request.POST.get("description", "").strip(),
            "permissions": selected,
            "bind_paths": paths,
        }
        serializer = RoleSerializer(data=data)
        if not serializer.is_valid():
            errors, status = _drf_errors(serializer), 400
        else:
            role = Role(**serializer.validated_data)
            options = {
                "permissions": role.permissions,
                "bind_paths": role.bind_paths,
                "role_name": None,
            }
            decision = gate.require(
                request.user,
                "role.manage",
                role,
                resource="role",
                options=options,
                summary=_summary(request, body=data),
            )
            with transaction.atomic():
                role.save(force_insert=True)
                gate.record(decision, summary=_summary(request, body=data))
            messages.success(request, f"role {role.name} created")
            return redirect("dashboard:roles")
    context = {
        "groups": permission_groups(),
        "selected": set(selected),
        "errors": errors,
        "post": request.POST,
    }
    return render(request, "dashboard/admin/role_form.html", context, status=status)


def _binding_options(binding) -> dict:
    # The same options the REST API passes, so rbac.checks.check_grant decides both alike.
    return {
        "subject_user_id": binding.user_id,
        "subject_team_id": binding.team_id,
        "permissions": binding.role.permissions,
        "bind_paths": binding.role.bind_paths,
    }


@gated("role.view")
def bindings(request):
    """Role bindings; POST creates one (subject, role, scope)."""
    user = request.user
    errors, status = [], 200
    if request.method == "POST":
        scope = request.POST.get("scope", "")
        kind, _, ident = scope.partition(":")
        subject = request.POST.get("subject", "")
        skind, _, sid = subject.partition(":")
        data = {
            "role": request.POST.get("role", ""),
            "user": as_id(sid) if skind == "user" else None,
            "team": as_id(sid) if skind == "team" else None,
            "scope_team": as_id(ident) if kind == "team" else None,
            "scope_host": as_id(ident) if kind == "host" else None,
        }
        serializer = BindingSerializer(data=data)
        if not serializer.is_valid():
            errors, status = _drf_errors(serializer), 400
        else:
            binding = RoleBinding(**serializer.validated_data, created_by=user)
            decision = gate.require(
                user,
                "role.manage",
                binding,
                resource="binding",
                options=_binding_options(binding),
                summary=_summary(request, body=data),
            )
            if RoleBinding.objects.filter(
                user=binding.user,
                team=binding.team,
                role=binding.role,
                scope_team=binding.scope_team,
                scope_host=binding.scope_host,
            ).exists():
                raise InvalidRequest("this binding exists already")
            with transaction.atomic():
                binding.save(force_insert=True)
                gate.record(decision, summary=_summary(request, body=data))
            messages.success(request, f"bound {binding}")
            return redirect("dashboard:bindings")
    rows = visible(
        RoleBinding.objects.select_related("user", "team", "role", "scope_team", "scope_host"),
        user,
        "role.view",
    )
    can_manage = may(user, "role.manage")
    context = {"bindings": rows, "can_manage": can_manage, "errors": errors}
    if can_manage:
        context |= {
            "users": User.objects.filter(is_active=True).only("id", "username"),
            "teams": Team.objects.only("id", "name"),
            "hosts": Host.objects.only("id", "name"),
            "roles": Role.objects.only("id", "name"),
        }
    return render(request, "dashboard/admin/bindings.html", context, status=status)


@require_POST
@gated("role.manage")
def binding_delete(request, pk):
    """Remove a binding (never one of your own: the gate's escalation check refuses it)."""
    binding = get_visible(
        RoleBinding.objects.select_related("role", "user", "team"),
        request.user,
        pk,
        "role.view",
        "binding",
    )
    options = _binding_options(binding) | {"permissions": []}
    decision = gate.require(
        request.user,
        "role.manage",
        binding,
        resource="binding",
        options=options,
        summary=_summary(request),
    )
    subject = binding.user
    with transaction.atomic():
        gate.record(decision, summary=_summary(request))
        binding.delete()
    forget(subject)
    messages.success(request, "binding removed")
    return redirect("dashboard:bindings")


@gated("token.view")
def tokens(request):
    """Your API tokens; POST issues one and shows its secret exactly once."""
    user = request.user
    secret, errors, status = None, [], 200
    if request.method == "POST":
        body = TokenCreateSerializer(
            data={
                "name": request.POST.get("name", "").strip(),
                "days": int(request.POST.get("days") or 90)
                if (request.POST.get("days") or "90").isdigit()
                else -1,
                "read_only": request.POST.get("read_only") == "on",
            }
        )
        if not body.is_valid():
            errors, status = _drf_errors(body), 400
        else:
            data = body.validated_data
            if ApiToken.objects.filter(user=user, name=data["name"]).exists():
                raise InvalidRequest(f"you already have a token named {data['name']!r}")
            decision = gate.require(
                user,
                "token.create",
                ApiToken(user=user, name=data["name"]),
                summary=_summary(request),
            )
            with transaction.atomic():
                token, secret = ApiToken.issue(
                    user, data["name"], days=data["days"], read_only=data["read_only"]
                )
                gate.record(
                    decision, summary=_summary(request, name=token.name, read_only=token.read_only)
                )
            status = 201
    rows = visible(ApiToken.objects.all(), user, "token.view")
    context = {
        "tokens": rows,
        "secret": secret,
        "errors": errors,
        "can_create": may(user, "token.create"),
    }
    response = render(request, "dashboard/admin/tokens.html", context, status=status)
    # The secret is in this page only: never cache it.
    response["Cache-Control"] = "no-store"
    return response


@require_POST
@gated("token.delete")
def token_revoke(request, pk):
    """Revoke one of your tokens (kept for the audit trail)."""
    token = get_visible(ApiToken.objects.all(), request.user, pk, "token.view", "token")
    decision = gate.require(request.user, "token.delete", token, summary=_summary(request))
    with transaction.atomic():
        ApiToken.objects.filter(pk=token.pk, revoked_at__isnull=True).update(
            revoked_at=timezone.now()
        )
        gate.record(decision, summary=_summary(request))
    messages.success(request, f"token {token.name} revoked")
    return redirect("dashboard:tokens")
