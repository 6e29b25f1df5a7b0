"""Image inventories: store what an agent read, ask an agent to read, export as an SBOM."""

from django.db import transaction
from django.utils import timezone

from compliance.models import ImageInventory
from images.models import Image
from operations.services import do_host_operation
from rbac import gate

MAX_ERROR = 500


def save(image: Image, found: dict) -> ImageInventory:
    """Store (or replace) the inventory of `image` from the runtime's reader output."""
    packages = [
        {
            "name": str(p.get("name", ""))[:200],
            "version": str(p.get("version", ""))[:200],
            "source": str(p.get("source", ""))[:200],
            "source_version": str(p.get("source_version", ""))[:200],
            "arch": str(p.get("arch", ""))[:32],
            "kind": str(p.get("kind", ""))[:8],
        }
        for p in found.get("packages") or []
    ]
    status = found.get("status")
    if status not in ImageInventory.Status.values:
        status = ImageInventory.Status.UNKNOWN
    with transaction.atomic():
        inventory, _ = ImageInventory.objects.update_or_create(
            image=image,
            defaults={
                "team_id": image.team_id,
                "host_id": image.host_id,
                "image_digest": image.image_id,
                "status": status,
                "ecosystem": str(found.get("ecosystem") or "")[:32],
                "distro": str(found.get("distro") or "")[:120],
                "packages": packages,
                "package_count": len(packages),
                "error": str(found.get("error") or "")[:MAX_ERROR],
                "scanned_at": timezone.now(),
            },
        )
    return inventory


def rematch(inventory_ids) -> int:
    """Match these inventories against the advisories now in the database; returns matches."""
    from compliance import matching

    return matching.match_inventories(ImageInventory.objects.filter(pk__in=list(inventory_ids)))


def do_scan(*, host, image=None, acting_user, summary=None):
    """Ask the host's agent to read the inventory of `image` (or of all its images)."""
    target = image if image is not None else Image(host=host)
    decision = gate.require(acting_user, "compliance.run", target, summary=summary)
    return do_host_operation(
        decision,
        kind="image.inventory",
        target_type="image",
        target_id=image.pk if image is not None else "",
        host=host,
        team=image.team if image is not None else None,
        params={},
        acting_user=acting_user,
        summary=summary,
    )


def scan_everywhere() -> list[int]:
    """The scheduled scan: one `image.inventory` operation per live host, audited as the
    system's (no person asked); returns the operation ids."""
    from audit.services import record_event
    from hosts.models import Host
    from operations import dispatch

    ids = []
    hosts = Host.objects.filter(revoked_at__isnull=True, state=Host.State.UP)
    for host in hosts:
        with transaction.atomic():
            op = dispatch.new_operation(
                kind="image.inventory", target_type="image", target_id="", host=host
            )
            record_event(
                action="compliance.run",
                outcome=gate.ALLOWED,
                reason="scheduled inventory scan",
                object_type="host",
                object_id=host.pk,
                object_repr=host.name,
                operation_id=op.pk,
                task_id=op.task_id,
            )
            dispatch.send_after_commit(op)
        ids.append(op.pk)
    return ids
