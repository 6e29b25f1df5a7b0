"""Option checks the gate runs for container create/exec and volume create."""

from accounts.models import Membership
from containers import maxima, policy, references
from images import ownership


def _team_ids(user) -> set[int]:
    cached = getattr(user, "_berth_team_ids", None)
    if cached is None:
        cached = set(Membership.objects.filter(user_id=user.pk).values_list("team_id", flat=True))
        user._berth_team_ids = cached
    return cached


def check_create(spec, scope, *, user, obj) -> list[str]:
    """Dangerous options of a container spec, plus references to other objects: each must be
    one live object of the container's team, and is bound to it (see containers.references)."""
    from volumes.models import Volume

    problems = []
    volumes = {}
    if obj is not None:
        problems += references.bind(spec, team_id=obj.team_id, host_id=obj.host_id)
        volumes = dict(
            Volume.objects.filter(
                host_id=obj.host_id, name__in=references.volume_names(spec)
            ).values_list("name", "options")
        )
        if isinstance(spec.get("image"), str):
            foreign = ownership.foreign_image(obj.host_id, spec["image"], obj.team_id)
            if foreign:
                problems.append(foreign)
    problems += policy.violations(
        spec,
        scope.codes,
        bind_paths=scope.bind_paths,
        volume_options=volumes,
        default_limits=scope.default_limits,
    )
    problems += maxima.violations(spec, scope.max_limits)
    return problems


def check_exec(options, scope, *, user, obj) -> list[str]:
    """Exec as root into another team's container needs container.exec_root."""
    member = obj is not None and obj.team_id in _team_ids(user)
    return policy.exec_violations(options.get("user"), member, scope.codes)


def check_attach(options, scope, *, user, obj) -> list[str]:
    """Attaching to another team's TTY reaches its process as its user: root needs exec_root."""
    return check_exec({"user": options.get("user")}, scope, user=user, obj=obj)


def check_volume(options, scope, *, user, obj) -> list[str]:
    """Driver options that bind a host path (device=/...) are a bind mount in disguise."""
    host_path = policy.volume_host_path(options.get("options"))
    if host_path is None:
        return []
    if "container.bind_mount" not in scope.codes:
        return [f"a volume binding host path {host_path} requires permission container.bind_mount"]
    if not policy.path_within(host_path, scope.bind_paths):
        return [
            f"a volume binding host path {host_path} is outside the host paths your role allows"
        ]
    return []
