"""Find the object a Docker path names among the objects the caller may see (others: 404).

Containers are named as Docker does: full id, name (with or without the leading `/`), or a
unique id prefix. The Docker id of a Berth container is its runtime id once the host has
created it, `berth-<pk>` before. The gate then decides the action on the row found here.
"""

from config.ids import is_id
from containers.not_removed import NOT_REMOVED
from dockerapi.errors import DockerError
from rbac import gate

PENDING_PREFIX = "berth-"


def docker_id(container) -> str:
    """The Id Docker clients see for a container."""
    return container.runtime_id or f"{PENDING_PREFIX}{container.pk}"


def find_container(call, ref: str, action: str):
    """The visible container `ref` names; an audited 404 otherwise."""
    from containers.models import Container

    visible = gate.restrict(
        Container.objects.select_related("team", "host", "health").filter(NOT_REMOVED),
        call.user,
        "container.view",
    )
    name = ref.lstrip("/")
    found = None
    if ref.startswith(PENDING_PREFIX) and is_id(ref[len(PENDING_PREFIX) :]):
        found = visible.filter(pk=int(ref[len(PENDING_PREFIX) :])).first()
    found = found or visible.filter(runtime_id=ref).first() or visible.filter(name=name).first()
    if found is None and ref and all(c in "0123456789abcdef" for c in ref):
        matches = list(visible.filter(runtime_id__startswith=ref)[:2])
        if len(matches) > 1:
            raise DockerError(400, f"multiple containers found with provided prefix: {ref}")
        found = matches[0] if matches else None
    if found is None:
        _hidden(call, action, "container", ref, f"No such container: {ref}")
    return found


def _hidden(call, action, resource, ref, message):
    try:
        gate.not_visible(call.user, action, resource, ref, summary=call.summary())
    except Exception:
        raise DockerError(404, message) from None


def find_named(call, queryset, ref: str, action: str, resource: str, id_of):
    """A visible network or volume by name, Docker id or unique id prefix; audited 404 otherwise."""
    visible = gate.restrict(queryset, call.user, f"{resource}.view")
    found = visible.filter(name=ref).first()
    if found is None:
        matches = [obj for obj in visible if id_of(obj).startswith(ref)] if ref else []
        if len(matches) > 1:
            raise DockerError(400, f"multiple {resource}s found with provided prefix: {ref}")
        found = matches[0] if matches else None
    if found is None:
        _hidden(call, action, resource, ref, f"No such {resource}: {ref}")
    return found
