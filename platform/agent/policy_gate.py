"""Defense in depth: the agent re-checks a container's final spec before it runs it.

The web checked the request already; the agent checks again, on the row it reloaded, against
what the container's creator holds on its team and host, with the core's one policy function.
"""

from containers import maxima, policy, references
from images import ownership
from rbac.grants import in_scope
from runtime.errors import InvalidSpec
from runtime.spec import ContainerSpec
from volumes.models import Volume

USERNS_LABEL = "io.berth.userns"  # runtime.container.userns.LABEL (the range's key)


def checked_spec(container) -> ContainerSpec:
    """Parse the stored spec and refuse it if its creator may not run it here (InvalidSpec)."""
    data = container.spec
    if not isinstance(data, dict):
        raise InvalidSpec(f"container {container.name}: the stored spec is not an object")
    grants = in_scope(container.created_by, team_id=container.team_id, host_id=container.host_id)
    problems = policy.violations(
        data,
        grants.codes,
        bind_paths=grants.bind_paths,
        volume_options=_volume_options(container, data),
    )
    foreign = ownership.foreign_image(
        container.host_id, str(data.get("image") or ""), container.team_id
    )
    if foreign:
        problems.append(foreign)
    problems += maxima.violations(data, grants.max_limits)
    problems += references.verify(data, team_id=container.team_id, host_id=container.host_id)
    if problems:
        raise InvalidSpec(
            f"container {container.name}: refused by the host policy: " + "; ".join(problems)
        )
    spec = ContainerSpec.from_dict(data)
    # One user namespace range per team (runtime.container.userns): set here, never taken
    # from the request, so no container can ask for another team's range.
    spec.labels[USERNS_LABEL] = f"team-{container.team_id}"
    return spec


def _volume_options(container, data) -> dict:
    """Driver options of the named volumes the spec mounts (a `device=` option is a bind)."""
    names = [
        m.get("source")
        for m in data.get("mounts") or []
        if isinstance(m, dict) and m.get("type") == "volume"
    ]
    if not names:
        return {}
    rows = Volume.objects.filter(host_id=container.host_id, name__in=names).values_list(
        "name", "options"
    )
    return dict(rows)
