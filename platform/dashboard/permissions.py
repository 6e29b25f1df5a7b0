"""The dashboard's only door to the RBAC gate: thin helpers, never a second permission check."""

from rbac import gate


def may(user, action: str, obj=None) -> bool:
    """Whether the gate allows `action` (on `obj`, or anywhere) to `user`; cached per user object."""
    if not getattr(user, "is_authenticated", False):
        return False
    cache = user.__dict__.setdefault("_berth_may", {})
    key = (action, obj.__class__.__name__ if obj is not None else None, getattr(obj, "pk", None))
    if key not in cache:
        cache[key] = bool(gate.decide(user, action, obj).allowed)
    return cache[key]


def visible(queryset, user, action: str):
    """The part of `queryset` the gate lets `user` do `action` on (one SQL filter)."""
    return gate.restrict(queryset, user, action)


def get_visible(queryset, user, pk, action: str, resource: str):
    """Fetch one object the user may `action`; else audit the probe and raise NotVisible (404)."""
    obj = visible(queryset, user, action).filter(pk=pk).first()
    if obj is None:
        gate.not_visible(user, action, resource, pk)
    return obj
