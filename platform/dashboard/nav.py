"""The navigation: one entry per area, shown only when the gate lets the user use it."""

from dataclasses import dataclass

from django.urls import reverse

from dashboard.permissions import may
from rbac.generation import GenerationCache
from rbac.grants import grants_for


@dataclass(frozen=True)
class NavItem:
    """A link of the side navigation and the permission that makes it visible."""

    label: str
    url_name: str
    action: str | None  # None: every signed-in user
    group: str = ""


ITEMS = (
    NavItem("Dashboard", "dashboard:home", None),
    NavItem("Containers", "dashboard:containers", "container.view"),
    NavItem("Stacks", "dashboard:stacks", "container.view"),
    NavItem("Images", "dashboard:images", "image.view"),
    NavItem("Registries", "dashboard:registries", "registry.view"),
    NavItem("Networks", "dashboard:networks", "network.view"),
    NavItem("Volumes", "dashboard:volumes", "volume.view"),
    NavItem("Hosts", "dashboard:hosts", "host.view"),
    NavItem("Compliance", "compliance:page", "compliance.view"),
    NavItem("Users", "dashboard:users", "user.view", "Administration"),
    NavItem("Teams", "dashboard:teams", "team.view", "Administration"),
    NavItem("Roles", "dashboard:roles", "role.view", "Administration"),
    NavItem("Bindings", "dashboard:bindings", "role.view", "Administration"),
    NavItem("API tokens", "dashboard:tokens", "token.view", "Administration"),
    NavItem("Directory", "directory:mappings", "directory.view", "Administration"),
    NavItem("Audit log", "dashboard:audit", "audit.read", "Administration"),
    NavItem("Backups", "backups:index", "backup.view", "Administration"),
)


# What the gate answered for a user's entries, while their grants are unchanged
# (rbac/generation.py): a page asks once, not once per entry.
_answers = GenerationCache()


def visible_items(user) -> list[dict]:
    """The entries this user may use, with their URLs, in display order."""
    grants_for(user)  # read (or cached) once per request, under the current generation
    key = (user.pk, user.is_superuser, bool(getattr(user, "berth_read_only", False)))
    generation = getattr(user, "_berth_generation", None)
    items = _answers.get(key, generation)
    if items is None:
        items = tuple(
            {"label": item.label, "url": reverse(item.url_name), "group": item.group}
            for item in ITEMS
            if item.action is None or may(user, item.action)
        )
        _answers.put(key, generation, items)
    return [dict(item) for item in items]  # the caller marks the current one
