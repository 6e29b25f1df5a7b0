"""Team quotas: what the containers and volumes of one team may use together.

Keys of a team's `quotas` (integers; absent: no quota):
  containers   containers that exist (not removed)
  running      containers meant to run (desired running or paused)
  memory       bytes: the memory limits of the running ones, summed
  cpus         thousandths of a CPU: their CPU limits, summed
  volumes      named volumes
  images       images the team owns (public images count for nobody)
  image_bytes  bytes: their sizes, summed (an upload counts by its size until imported)
  volume_bytes bytes: the named volumes' sizes on disk as their hosts' agents last measured
               them (agent/volume_sizes.py). Growth inside a running container cannot be
               asked for in advance, so this quota refuses what would add to a team already
               past it: a new volume, or a start of a container that mounts a named volume.
A create or a start that would pass a quota is refused by the gate's decision, audited, with
the quota, what is in use and what was asked. Checks run inside the transaction that writes the
row, with the team's row locked, so concurrent creates cannot together pass a quota.
"""

import contextlib
import dataclasses

from containers import maxima
from containers.not_removed import NOT_REMOVED
from rbac import gate
from rbac.errors import AccessDenied

KEYS = (
    "containers",
    "running",
    "memory",
    "cpus",
    "volumes",
    "images",
    "image_bytes",
    "volume_bytes",
)


class QuotaExceeded(Exception):
    """A request would pass a team quota; `problems` say which, by how much."""

    def __init__(self, problems):
        super().__init__("; ".join(problems))
        self.problems = problems


def usage(team) -> dict:
    """What the team uses now, in the units of KEYS: a few aggregate queries whatever the
    number of its containers (the limits are summed by the database, containers/limits_sql.py)."""
    from django.db.models import Count, Q, Sum

    from containers.limits_sql import asked_cpus, asked_memory
    from containers.models import Container
    from images.models import Image
    from volumes.models import Volume

    live = (
        Container.objects.filter(team=team)
        .exclude(desired_state=Container.Desired.REMOVED)
        .filter(NOT_REMOVED)
    )
    running = Q(desired_state__in=(Container.Desired.RUNNING, Container.Desired.PAUSED))
    containers = live.aggregate(
        n=Count("id"),
        running=Count("id", filter=running),
        memory=Sum(asked_memory(), filter=running),
        cpus=Sum(asked_cpus(), filter=running),
    )
    volumes = Volume.objects.filter(team=team).aggregate(n=Count("id"), size=Sum("size"))
    images = Image.objects.filter(team=team).aggregate(n=Count("id"), size=Sum("size"))
    return {
        "containers": containers["n"],
        "running": containers["running"],
        "memory": containers["memory"] or 0,
        "cpus": containers["cpus"] or 0,
        "volumes": volumes["n"],
        "images": images["n"],
        "image_bytes": images["size"] or 0,
        "volume_bytes": volumes["size"] or 0,
    }


def _locked(team):
    from accounts.models import Team

    # Serializes the quota checks of one team (PostgreSQL row lock; SQLite's write
    # transactions are serialized already).
    return Team.objects.select_for_update().get(pk=team.pk)


def enforce(
    team,
    *,
    new_container=False,
    starting=None,
    new_volumes=0,
    new_images=0,
    image_bytes=0,
    pending_images=None,
) -> None:
    """Raise QuotaExceeded if the change passes a quota; call inside the writing transaction.

    `starting` is the spec of a container about to run (created and started, or started again).
    `pending_images(team)`, called under the team's lock, counts images not yet written whose
    work is queued or running (images/quota_check.py): in use too.
    """
    team = _locked(team)
    quotas = team.quotas or {}
    if not quotas:
        return
    used = usage(team)
    pending = pending_images(team) if pending_images and "images" in quotas else 0
    used["images"] += pending
    wanted = dict.fromkeys(KEYS, 0)
    wanted["containers"] = int(new_container)
    wanted["volumes"] = new_volumes
    wanted["images"] = new_images
    wanted["image_bytes"] = image_bytes
    problems = []
    if starting is not None:
        asked = maxima.asked(starting)
        wanted["running"] = 1
        for key in ("memory", "cpus"):
            if key in quotas and asked[key] is None:
                problems.append(
                    f"{key}: team {team.name} has a {key} quota, so a container without a "
                    f"{key} limit cannot run"
                )
            wanted[key] = asked[key] or 0
    for key in KEYS:
        quota = quotas.get(key)
        if isinstance(quota, int) and wanted[key] and used[key] + wanted[key] > quota:
            note = f" ({pending} of them pending)" if key == "images" and pending else ""
            problems.append(
                f"{key}: team {team.name}'s quota is {quota}, {used[key]} in use{note}, "
                f"this asks {wanted[key]} more"
            )
    if new_volumes or (starting is not None and _mounts_volumes(starting)):
        problems += _volume_bytes(team, quotas.get("volume_bytes"), used["volume_bytes"])
    if problems:
        raise QuotaExceeded(problems)


def _mounts_volumes(spec: dict) -> bool:
    return any(m.get("type") == "volume" for m in spec.get("mounts") or [])


def _volume_bytes(team, quota, used: int) -> list[str]:
    # Nothing is asked in advance (a volume grows as it is used): at the quota still passes,
    # past it nothing more is given until the team frees space.
    if not isinstance(quota, int) or used <= quota:
        return []
    return [
        f"volume_bytes: team {team.name}'s quota is {quota}, {used} in use (as measured on "
        "its hosts), this asks 0 more: no new volume nor a start with volumes until the "
        "team's volumes are back within it"
    ]


@contextlib.contextmanager
def guarded(decision, summary=None):
    """Turn a QuotaExceeded raised inside into the gate's audited refusal (403)."""
    try:
        yield
    except QuotaExceeded as err:
        refused = dataclasses.replace(
            decision, allowed=False, reason=str(err), problems=tuple(err.problems)
        )
        gate.record(refused, summary=summary)
        raise AccessDenied(refused) from None


def valid(quotas) -> str:
    """Why `quotas` is not a valid quota object ("" when it is)."""
    if not isinstance(quotas, dict) or set(quotas) - set(KEYS):
        return f"an object with keys from {', '.join(KEYS)}"
    for value in quotas.values():
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            return "quotas are non-negative integers"
    return ""
