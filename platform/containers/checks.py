"""Option checks the gate runs for container create/exec and volume create."""

from accounts.models import Membership
from containers import policy
from images import ownership


def _team_ids(user) -> set[int]:
    cached = getattr(user, "_berth_team_ids", None)
    if cached is None:
        cached = set(Membership.objects.filter(user_id=user.pk).values_list("team_id", flat=True))
        user._berth_team_ids = cached
    return cached


def check_create(spec, scope, *, user, obj) -> list[str]:
    """Dangerous options of a container spec, plus volumes and namespaces of other teams."""
    from containers.models import Container
    from networks.models import Network
    from volumes.models import Volume

    names = [
        m.get("source")
        for m in spec.get("mounts") or []
        if isinstance(m, dict) and m.get("type") == "volume"
    ]
    volumes = {}
    problems = []
    if names and obj is not None:
        for name, team_id, options in Volume.objects.filter(
            host_id=obj.host_id, name__in=names
        ).values_list("name", "team_id", "options"):
            volumes[name] = options
            if team_id != obj.team_id:
                problems.append(f"volume {name!r} belongs to another team")
    if obj is not None and isinstance(spec.get("image"), str):
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
    wanted = [n for n in (spec.get("network") or {}).get("networks") or [] if isinstance(n, str)]
    if wanted and obj is not None:
        foreign = Network.objects.filter(host_id=obj.host_id, name__in=wanted).exclude(
            team_id=obj.team_id
        )
        for name in foreign.values_list("name", flat=True):
            problems.append(f"network {name!r} belongs to another team")
    joined = [
        v.partition(":")[2]
        for v in (spec.get("namespaces") or {}).values()
        if str(v).startswith("container:")
    ]
    mode = (spec.get("network") or {}).get("mode", "")
    if str(mode).startswith("container:"):
        joined.append(mode.partition(":")[2])
    for ref in joined:
        same_team = Container.objects.filter(
            host_id=obj.host_id, team_id=obj.team_id, name=ref
        ).exists()
        if not same_team:
            problems.append(
                f"joining the namespaces of container {ref!r}: no such container of this team on this host"
            )
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
