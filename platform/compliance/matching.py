"""Match image inventories against the imported advisories, in each ecosystem's version order.

One query per ecosystem loads the affected packages named in the inventories; the comparisons
run in memory; the matches replace the inventories' earlier ones. No image is read again, so a
re-match after an import takes seconds.
"""

from collections import defaultdict

from django.db import transaction

from compliance.models import AffectedPackage, ImageAdvisory, ImageInventory
from compliance.versions import BadVersion, affected, comparator


def _candidates(ecosystem: str, names) -> dict:
    """name -> [(advisory id, severity, ranges, versions)] for one ecosystem (and its base)."""
    base = ecosystem.split(":", 1)[0]
    wanted = {ecosystem, base}
    by_name = defaultdict(list)
    rows = AffectedPackage.objects.filter(ecosystem__in=wanted, name__in=list(names)).values_list(
        "name", "advisory_id", "advisory__severity", "ranges", "versions"
    )
    for name, advisory_id, severity, ranges, versions in rows:
        by_name[name].append((advisory_id, severity, ranges, versions))
    return by_name


def matches_of(inventory: ImageInventory, candidates: dict, compare) -> list[ImageAdvisory]:
    """The advisories that apply to the packages of one inventory."""
    out, seen = [], set()
    for package in inventory.packages:
        name = package.get("source") or package.get("name")
        version = package.get("source_version") or package.get("version")
        for advisory_id, severity, ranges, versions in candidates.get(name, ()):
            if (advisory_id, name) in seen:
                continue
            try:
                hit, fixed = affected(version, ranges, versions, compare)
            except BadVersion:
                continue  # a version the ordering cannot read matches nothing, and says so nowhere worse
            if hit:
                seen.add((advisory_id, name))
                out.append(
                    ImageAdvisory(
                        inventory=inventory,
                        advisory_id=advisory_id,
                        team_id=inventory.team_id,
                        host_id=inventory.host_id,
                        package=name[:200],
                        installed=version[:200],
                        fixed=fixed[:200],
                        severity=severity,
                    )
                )
    return out


def match_inventories(inventories) -> int:
    """Replace the matches of `inventories` (a queryset); returns how many were found."""
    inventories = list(inventories)
    by_ecosystem = defaultdict(list)
    for inventory in inventories:
        if inventory.status == ImageInventory.Status.OK and comparator(inventory.ecosystem):
            by_ecosystem[inventory.ecosystem].append(inventory)
    found = []
    for ecosystem, group in by_ecosystem.items():
        names = {p.get("source") or p.get("name") for inv in group for p in inv.packages}
        candidates = _candidates(ecosystem, names)
        compare = comparator(ecosystem)
        for inventory in group:
            found += matches_of(inventory, candidates, compare)
    with transaction.atomic():
        ImageAdvisory.objects.filter(inventory__in=[i.pk for i in inventories]).delete()
        ImageAdvisory.objects.bulk_create(found, batch_size=2000)
    return len(found)


def rematch_all() -> int:
    """Match every inventory again (after an OSV import)."""
    return match_inventories(ImageInventory.objects.all())
