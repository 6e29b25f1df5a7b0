"""Evaluate every check over plain rows: no queries inside the loops, one list of results out.

`evaluate()` is pure (rows in, findings out), so the bench and the tests can feed it directly.
"""

from collections import defaultdict
from dataclasses import dataclass, field

from compliance.checks import for_target


@dataclass
class Result:
    """One failed check on one object, before it becomes a Finding row."""

    check_id: str
    severity: str
    object_type: str
    object_id: str
    object_repr: str
    team_id: int | None
    host_id: int | None
    detail: str
    exception_id: int | None = None


@dataclass
class Tally:
    """Counts for one team."""

    evaluations: int = 0
    failed: int = 0
    excepted: int = 0
    by_severity: dict = field(default_factory=dict)


@dataclass
class Outcome:
    """Everything one pass found."""

    results: list[Result]
    tallies: dict  # team id (or None) -> Tally
    objects: int

    @property
    def evaluations(self) -> int:
        return sum(t.evaluations for t in self.tallies.values())

    @property
    def failed(self) -> int:
        return sum(t.failed for t in self.tallies.values())

    @property
    def excepted(self) -> int:
        return sum(t.excepted for t in self.tallies.values())


def normalize_ref(ref: str) -> str:
    """'busybox' -> 'busybox:latest'; references with a tag or digest are kept."""
    last = ref.rsplit("/", 1)[-1]
    return ref if (":" in last or "@" in ref) else f"{ref}:latest"


def image_index(images) -> dict:
    """(host id, reference or id) -> image config's inner "config" object."""
    index = {}
    for image in images:
        inner = (image.get("config") or {}).get("config") or {}
        host = image["host_id"]
        image_id = image["image_id"]
        index[(host, image_id)] = inner
        index[(host, image_id.split(":", 1)[-1])] = inner
        for tag in image.get("repo_tags") or []:
            index[(host, tag)] = inner
    return index


def container_image(index: dict, container: dict) -> dict:
    """The inner config of the container's image on its host, or {} when unknown."""
    ref = container["spec"].get("image") or container.get("image") or ""
    host = container["host_id"]
    return index.get((host, ref)) or index.get((host, normalize_ref(ref))) or {}


def evaluate(*, containers, images, site_checks=True, exceptions=None, now) -> Outcome:
    """Run the container, image and (optionally) site checks; `exceptions` maps
    (check id, object type, object id) -> exception id for the exceptions in force."""
    exceptions = exceptions or {}
    tallies: dict = defaultdict(Tally)
    results: list[Result] = []
    index = image_index(images)

    def add(check, object_type, object_id, object_repr, team_id, host_id, detail):
        tally = tallies[team_id]
        exc = exceptions.get((check.id, object_type, object_id))
        if exc is not None:
            tally.excepted += 1
        else:
            tally.failed += 1
            tally.by_severity[check.severity] = tally.by_severity.get(check.severity, 0) + 1
        results.append(
            Result(
                check.id,
                check.severity,
                object_type,
                object_id,
                object_repr,
                team_id,
                host_id,
                detail[:500],
                exc,
            )
        )

    container_checks = [(c, c.test) for c in for_target("container")]
    for container in containers:
        spec = container["spec"] if isinstance(container["spec"], dict) else {}
        config = container_image(index, container)
        team_id, host_id = container["team_id"], container["host_id"]
        tallies[team_id].evaluations += len(container_checks)
        object_id = str(container["pk"])
        for check, test in container_checks:
            detail = test(spec, config)
            if detail:
                add(check, "container", object_id, container["name"], team_id, host_id, detail)

    image_checks = [(c, c.test) for c in for_target("image")]
    for image in images:
        team_id, host_id = image.get("team_id"), image["host_id"]
        tallies[team_id].evaluations += len(image_checks)
        tags = image.get("repo_tags") or []
        label = tags[0] if tags else image["image_id"][:19]
        for check, test in image_checks:
            detail = test(image, now)
            if detail:
                add(check, "image", str(image["pk"]), label, team_id, host_id, detail)

    site_objects = 0
    if site_checks:
        for check in for_target("site"):
            evaluated, failures = check.test(now)
            tallies[None].evaluations += evaluated
            site_objects += evaluated
            for f in failures:
                add(
                    check,
                    f.object_type,
                    f.object_id,
                    f.object_repr,
                    f.team_id,
                    f.host_id,
                    f.detail,
                )
    return Outcome(results, dict(tallies), len(containers) + len(images) + site_objects)
