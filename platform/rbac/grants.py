"""What a user holds: their role bindings, flattened into grants, loaded in one query."""

from dataclasses import dataclass, field

from django.db.models import Q

from rbac import catalog, generation

GLOBAL, TEAM, HOST = "global", "team", "host"


@dataclass(frozen=True)
class Grant:
    """One binding as the gate sees it: a role's permissions in one scope."""

    role: str
    codes: frozenset[str]
    scope: str  # global | team | host
    team_id: int | None = None
    host_id: int | None = None
    bind_paths: tuple[str, ...] = ()
    default_limits: dict = field(default_factory=dict, hash=False, compare=False)
    max_limits: dict = field(default_factory=dict, hash=False, compare=False)

    def holds(self, action: str) -> bool:
        """Whether the role includes the permission (wildcards honoured)."""
        return catalog.holds(self.codes, action)

    def covers(self, team_id, host_id) -> bool:
        """Whether an object owned by team_id on host_id lies inside this grant's scope."""
        if self.scope == GLOBAL:
            return True
        if self.scope == TEAM:
            return team_id is not None and team_id == self.team_id
        return host_id is not None and host_id == self.host_id


SUPERUSER_GRANT = Grant(
    role="superuser", codes=frozenset({catalog.WILDCARD}), scope=GLOBAL, bind_paths=("/",)
)

_CACHE_ATTR = "_berth_grants"
# user id -> grants read under a generation (rbac/generation.py): across requests, only while no
# user, team, membership, role or binding changed since.
_shared = generation.GenerationCache()


def grants_for(user) -> list[Grant]:
    """Every grant of the user, direct or through a team; cached on the user object, and
    across requests while nothing they depend on changed."""
    if user is None or not user.is_authenticated or not user.is_active:
        return []
    cached = getattr(user, _CACHE_ATTR, None)
    if cached is not None:
        return cached
    # The generation this request's token was checked under, else now: before the database.
    current = getattr(user, "_berth_generation", None) or generation.current()
    user._berth_generation = current  # what else is cached for this user keys on it too
    shared = _shared.get(user.pk, current)
    if shared is not None:
        grants = ([SUPERUSER_GRANT] if user.is_superuser else []) + shared
        setattr(user, _CACHE_ATTR, grants)
        return grants
    from rbac.models import RoleBinding

    rows = (
        RoleBinding.objects.filter(Q(user_id=user.pk) | Q(team__memberships__user_id=user.pk))
        .values_list(
            "role__name",
            "role__permissions",
            "role__bind_paths",
            "role__default_limits",
            "role__max_limits",
            "scope_team_id",
            "scope_host_id",
        )
        .distinct()
    )
    bound = []
    for name, codes, bind_paths, limits, maxima, team_id, host_id in rows:
        scope = TEAM if team_id else HOST if host_id else GLOBAL
        bound.append(
            Grant(
                role=name,
                codes=frozenset(codes or ()),
                scope=scope,
                team_id=team_id,
                host_id=host_id,
                bind_paths=tuple(bind_paths or ()),
                default_limits=dict(limits or {}),
                max_limits=dict(maxima or {}),
            )
        )
    _shared.put(user.pk, current, bound)
    grants = ([SUPERUSER_GRANT] if user.is_superuser else []) + bound
    setattr(user, _CACHE_ATTR, grants)
    return grants


def forget(user) -> None:
    """Drop the cached grants (after the user's bindings or memberships changed)."""
    for attr in (_CACHE_ATTR, "_berth_generation"):
        if user is not None and hasattr(user, attr):
            delattr(user, attr)


@dataclass(frozen=True)
class ScopeGrants:
    """The permissions a user holds on one object: what option checks and escalation need."""

    codes: frozenset[str]
    bind_paths: tuple[str, ...]
    default_limits: dict
    max_limits: dict = field(default_factory=dict)


def in_scope(user, team_id=None, host_id=None) -> ScopeGrants:
    """Concrete permissions held on an object owned by team_id on host_id."""
    codes: set[str] = set()
    paths: list[str] = []
    limits: dict = {}
    for grant in grants_for(user):
        if grant.covers(team_id, host_id):
            codes |= catalog.expand(grant.codes)
            if grant.holds("container.bind_mount"):
                paths += grant.bind_paths
            if grant.holds("container.create") and grant.default_limits and not limits:
                limits = dict(grant.default_limits)
    # A holder of any create grant without default limits (e.g. admin) gets none imposed.
    creating = [
        g for g in grants_for(user) if g.covers(team_id, host_id) and g.holds("container.create")
    ]
    if any(not g.default_limits for g in creating):
        limits = {}
    return ScopeGrants(frozenset(codes), tuple(dict.fromkeys(paths)), limits, _maxima(creating))


def _maxima(creating: list[Grant]) -> dict:
    """The most generous maxima among the grants that allow creating here: a grant without
    maxima (e.g. admin) imposes none; otherwise each key's highest cap, and a key one of the
    grants leaves uncapped stays uncapped."""
    if not creating or any(not g.max_limits for g in creating):
        return {}
    keys = set.intersection(*(set(g.max_limits) for g in creating))
    return {k: max(g.max_limits[k] for g in creating) for k in keys}
