"""The one authorization gate: every entry point asks it, and every answer is audited.

    decide(user, action, obj=None, *, resource=None, options=None) -> Decision
    restrict(queryset, user, action) -> queryset filtered in SQL to what the user may do
    authorize(...)  -> decide, write the audit event, raise AccessDenied when refused
    require(...)    -> decide; refusals are audited and raised, an allowed decision is returned
                       unrecorded so the caller records it in its own transaction (with the
                       Operation it creates) via record()
    not_visible(...) -> audit a lookup of an object the user may not see, raise NotVisible (404)

Rules, as user stories:
- I may do `resource.verb` on an object when one of my roles (bound to me or to a team I am in)
  holds that permission in a scope that covers the object: global, the object's team, or its host.
- I may see a public object (a host; an image without a team) when I may view that kind anywhere.
- I may touch an object that has an owner (an API token) only when it is mine.
- With a read-only API token I may only read.
- Requested options (a container spec, an exec user, volume driver options) are checked by the
  option check registered for the action, against the permissions I hold on that object.
"""

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from django.db.models import Q, QuerySet

from audit.services import record_event
from rbac import catalog
from rbac.errors import AccessDenied, NotVisible
from rbac.grants import GLOBAL, HOST, TEAM, ScopeGrants, grants_for, in_scope

ALLOWED, DENIED, FAILED = "allowed", "denied", "failed"

# action -> check(options, scope_grants, *, user, obj) -> list of problems (empty: fine)
OptionCheck = Callable[..., list[str]]
_OPTION_CHECKS: dict[str, OptionCheck] = {}


def register_option_check(action: str, check: OptionCheck) -> None:
    """Declare how the options of `action` are checked (apps call this from ready())."""
    catalog.split(action)
    _OPTION_CHECKS[action] = check


@dataclass(frozen=True)
class Decision:
    """The gate's answer, with everything the audit event needs."""

    allowed: bool
    reason: str
    action: str = ""
    user: Any = field(default=None, repr=False, compare=False)
    obj: Any = field(default=None, repr=False, compare=False)
    resource: str = ""
    problems: tuple[str, ...] = ()

    def __bool__(self):
        return self.allowed


def object_scope(obj) -> tuple[int | None, int | None]:
    """(team id, host id) of an object, from the model's rbac_team_field / rbac_host_field."""
    model = type(obj)
    team_field = getattr(model, "rbac_team_field", None)
    host_field = getattr(model, "rbac_host_field", None)
    team_id = (
        obj.pk
        if team_field == "id"
        else getattr(obj, f"{team_field}_id", None)
        if team_field
        else None
    )
    host_id = (
        obj.pk
        if host_field == "id"
        else getattr(obj, f"{host_field}_id", None)
        if host_field
        else None
    )
    return team_id, host_id


def _is_read_only(user) -> bool:
    # Set by the bearer-token authentication for tokens flagged read-only.
    return bool(getattr(user, "berth_read_only", False))


def _is_public(obj) -> bool:
    check = getattr(obj, "rbac_is_public", None)
    if check is not None:
        return bool(check())
    public_q = getattr(type(obj), "rbac_public_q", None)
    if public_q is None:
        return False
    q = public_q()
    if not q:
        return True
    return type(obj)._default_manager.filter(q, pk=obj.pk).exists() if obj.pk else False


def decide(user, action: str, obj=None, *, resource: str | None = None, options=None) -> Decision:
    """Decide whether `user` may do `action` (on `obj`, with `options`); never writes."""
    resource_type, verb = catalog.split(action)
    resource = resource or resource_type

    def deny(reason, problems=()):
        return Decision(False, reason, action, user, obj, resource, tuple(problems))

    if user is None or not user.is_authenticated:
        return deny("authentication required")
    if not user.is_active:
        return deny("user is inactive")
    if _is_read_only(user) and not catalog.is_read(action):
        return deny(f"this API token is read-only; {action} changes state")
    grants = [g for g in grants_for(user) if g.holds(action)]
    if not grants:
        return deny(f"no role of {user.username} grants {action}")
    team_id = host_id = None
    if obj is not None:
        owner_field = getattr(type(obj), "rbac_owner_field", None)
        if owner_field and getattr(obj, f"{owner_field}_id") != user.pk:
            return deny(f"{resource} belongs to another user")
        team_id, host_id = object_scope(obj)
        # An owned object (an API token) is in every scope of its owner.
        covering = grants if owner_field else [g for g in grants if g.covers(team_id, host_id)]
        if not covering and not (verb == "view" and _is_public(obj)):
            return deny(f"no role of {user.username} grants {action} on this {resource}")
        grants = covering or grants
    check = _OPTION_CHECKS.get(action)
    if check is not None and options is not None:
        scope = (
            in_scope(user, team_id, host_id)
            if obj is not None
            else ScopeGrants(frozenset(), (), {})
        )
        problems = check(options, scope, user=user, obj=obj)
        if problems:
            return deny("; ".join(problems), problems)
    grant = grants[0]
    where = (
        grant.scope if grant.scope == GLOBAL else f"{grant.scope} {grant.team_id or grant.host_id}"
    )
    return Decision(True, f"granted by role {grant.role} ({where})", action, user, obj, resource)


def restrict(queryset: QuerySet, user, action: str) -> QuerySet:
    """Filter `queryset` in SQL to the objects on which `user` may do `action`."""
    _, verb = catalog.split(action)
    model = queryset.model
    if user is None or not user.is_authenticated or not user.is_active:
        return queryset.none()
    if _is_read_only(user) and not catalog.is_read(action):
        return queryset.none()
    grants = [g for g in grants_for(user) if g.holds(action)]
    if not grants:
        return queryset.none()
    owner_field = getattr(model, "rbac_owner_field", None)
    if owner_field:
        return queryset.filter(**{f"{owner_field}_id": user.pk})
    if any(g.scope == GLOBAL for g in grants):
        return queryset
    public_q = getattr(model, "rbac_public_q", None)
    if verb == "view" and public_q is not None:
        public = public_q()
        if not public:  # every object of this kind is public
            return queryset
    else:
        public = None
    team_field = getattr(model, "rbac_team_field", None)
    host_field = getattr(model, "rbac_host_field", None)
    team_ids = sorted({g.team_id for g in grants if g.scope == TEAM})
    host_ids = sorted({g.host_id for g in grants if g.scope == HOST})
    condition = Q(pk__in=[])
    if team_field and team_ids:
        condition |= Q(**{f"{team_field}__in": team_ids})
    if host_field and host_ids:
        condition |= Q(**{f"{host_field}__in": host_ids})
    if public is not None:
        condition |= public
    return queryset.filter(condition)


def restrict_key(user, action: str, model) -> tuple | None:
    """What restrict(queryset of `model`, user, action) depends on besides the queryset: equal
    keys, equal SQL filters (a caller may keep SQL compiled for one key). None for a model
    whose public part is decided at query time (rbac_public_q)."""
    if getattr(model, "rbac_public_q", None) is not None:
        return None
    if user is None or not user.is_authenticated or not user.is_active:
        return (model._meta.label, action, None)
    grants = [g for g in grants_for(user) if g.holds(action)]
    return (
        model._meta.label,
        action,
        user.pk,
        _is_read_only(user),
        tuple(sorted({(g.scope, g.team_id or 0, g.host_id or 0) for g in grants})),
    )


def _object_fields(decision: Decision) -> dict:
    obj = decision.obj
    if obj is None:
        return {"object_type": decision.resource}
    return {
        "object_type": decision.resource,
        "object_id": "" if obj.pk is None else obj.pk,
        "object_repr": str(obj),
    }


def record(
    decision: Decision,
    *,
    summary: dict | None = None,
    operation=None,
    task_id: str = "",
    outcome: str | None = None,
    reason: str | None = None,
):
    """Write the audit event of a decision (in the caller's transaction). An allowed read
    outside a transaction may go through the process's audit journal (audit/journal.py):
    refusals and changes are in the chain before the caller goes on."""
    outcome = outcome or (ALLOWED if decision.allowed else DENIED)
    return record_event(
        actor=decision.user if getattr(decision.user, "is_authenticated", False) else None,
        action=decision.action,
        outcome=outcome,
        reason=reason if reason is not None else decision.reason,
        summary=summary,
        operation_id=getattr(operation, "pk", None),
        task_id=task_id or getattr(operation, "task_id", "") or "",
        journaled=outcome == ALLOWED and operation is None and _is_read_code(decision.action),
        **_object_fields(decision),
    )


def _is_read_code(action: str) -> bool:
    """Whether `action` is a declared permission that changes nothing (anything else is
    appended before the answer)."""
    try:
        return catalog.is_read(action)
    except ValueError:
        return False


def require(user, action: str, obj=None, *, resource=None, options=None, summary=None) -> Decision:
    """Decide; a refusal is audited and raised, an allowed decision is returned for record()."""
    decision = decide(user, action, obj, resource=resource, options=options)
    if not decision.allowed:
        record(decision, summary=summary)
        raise AccessDenied(decision)
    return decision


def authorize(
    user,
    action: str,
    obj=None,
    *,
    resource=None,
    options=None,
    summary=None,
    operation=None,
    task_id="",
) -> Decision:
    """Decide and audit the decision; raise AccessDenied when refused."""
    decision = decide(user, action, obj, resource=resource, options=options)
    record(decision, summary=summary, operation=operation, task_id=task_id)
    if not decision.allowed:
        raise AccessDenied(decision)
    return decision


def record_secret_use(
    action: str, obj, *, allowed: bool, reason: str, resource=None, summary=None
) -> Decision:
    """Audit an action whose credential is a one-time secret in the request (a join token), not
    a user: the caller has checked the secret; the decision is written like any other."""
    decision = Decision(allowed, reason, action, None, obj, resource or catalog.split(action)[0])
    record(decision, summary=summary)
    return decision


def not_visible(user, action: str, resource: str, object_id, *, summary=None):
    """Audit a request for an object that is missing or hidden from the user; raise 404."""
    decision = Decision(
        False, f"no {resource} {object_id} visible to this user", action, user, None, resource
    )
    record_event(
        actor=user if getattr(user, "is_authenticated", False) else None,
        action=action,
        outcome=DENIED,
        reason=decision.reason,
        object_type=resource,
        object_id=object_id,
        summary=summary,
    )
    raise NotVisible(f"{resource} {object_id!s} not found")
