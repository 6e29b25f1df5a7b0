"""Cordon, uncordon and remove a host: decided by the gate, written with the audit event.

Removing a host revokes its key: `operations.dispatch.send_signed` sends it nothing more, its
agent refuses every message (`agent.admission`), and its heartbeats no longer mark it up. Its
container rows stay for the audit trail, marked removed.
"""

from django.db import transaction
from django.db.models import ProtectedError, Q
from django.utils import timezone

from config.errors import Conflict
from containers.models import Container
from containers.not_removed import NOT_REMOVED
from hosts.models import Host, JoinToken
from operations.models import Operation
from rbac import gate

LIVE = Q(observed_state__in=("running", "paused")) | Q(desired_state__in=("running", "paused"))


def set_cordoned(decision, host: Host, cordoned: bool, *, summary=None) -> Host:
    """Cordon (no new containers; running ones stay) or uncordon `host`."""
    if host.revoked_at is not None:
        raise Conflict(f"host {host.name} was removed")
    with transaction.atomic():
        Host.objects.filter(pk=host.pk).update(cordoned=cordoned)
        host.cordoned = cordoned
        gate.record(decision, summary=summary)
    return host


def live_containers(host: Host):
    """Containers of `host` that run or are meant to (not removed)."""
    return Container.objects.filter(host=host).filter(NOT_REMOVED).filter(LIVE)


def remove(decision, host: Host, *, force: bool = False, summary=None) -> Host:
    """Revoke `host`'s key and mark it down; refused while it runs containers unless forced."""
    if host.revoked_at is not None:
        raise Conflict(f"host {host.name} was removed already")
    live = list(live_containers(host).values_list("name", flat=True)[:6])
    if live and not force:
        names = ", ".join(live[:5]) + (", ..." if len(live) > 5 else "")
        raise Conflict(
            f"host {host.name} runs containers ({names}); stop or remove them first, or remove "
            "the host anyway with ?force=1 (its containers are then marked removed here, and "
            "the machine keeps whatever it runs)",
            code="host_busy",
        )
    now = timezone.now()
    reason = f"host {host.name} was removed"
    with transaction.atomic():
        Host.objects.filter(pk=host.pk).update(revoked_at=now, state=Host.State.DOWN)
        JoinToken.objects.filter(host=host, used_at__isnull=True).update(expires_at=now)
        # The rows stay for the audit trail; nothing will ever report on them again.
        Container.objects.filter(host=host).filter(NOT_REMOVED).update(
            observed_state="removed", desired_state="removed", error=reason, observed_at=now
        )
        Operation.objects.filter(host=host, state__in=("pending", "running")).update(
            state="failed", error=reason, finished_at=now
        )
        gate.record(decision, summary={**(summary or {}), "force": force})
    host.refresh_from_db()
    return host


def answers(host: Host) -> bool:
    """The host is enrolled, not removed, marked up and its heartbeat not stale (as placement
    judges it: a host marked up that has not reported yet counts as answering)."""
    stale = host.last_heartbeat is not None and not host.is_alive
    return host.revoked_at is None and host.state == Host.State.UP and not stale


def cancel_operations(decision, host: Host, *, summary=None) -> int:
    """Fail the pending or running operations of a host that takes no work (down, removed,
    not joined), so their pages and containers stop waiting; containers that never came to
    exist there (still pending) are marked removed. Refused while the host is up."""
    if answers(host):
        raise Conflict(f"host {host.name} is up; its operations will finish there", code="host_up")
    now = timezone.now()
    reason = f"cancelled: host {host.name} does not answer"
    with transaction.atomic():
        ops = Operation.objects.filter(host=host, state__in=("pending", "running"))
        count = ops.update(state="failed", error=reason, finished_at=now)
        Container.objects.filter(host=host, observed_state="pending").update(
            observed_state="removed", desired_state="removed", error=reason, observed_at=now
        )
        gate.record(decision, summary={**(summary or {}), "cancelled": count})
    return count


def forget(decision, host: Host, *, summary=None) -> dict:
    """Delete a host that is gone and every row of what it held (containers, networks,
    volumes, images, operations): nothing can reach that machine to clean up, and the rows
    would block their teams' deletion. Refused while the host is up; the audit log keeps
    the record (counts and names in this decision's summary)."""
    from images.models import Image  # noqa: PLC0415
    from networks.models import Network  # noqa: PLC0415
    from volumes.models import Volume  # noqa: PLC0415

    if answers(host):
        raise Conflict(
            f"host {host.name} is up; remove (or drain) it first, then forget it",
            code="host_up",
        )
    held = {
        "containers": list(Container.objects.filter(host=host).values_list("name", flat=True)),
        "networks": list(Network.objects.filter(host=host).values_list("name", flat=True)),
        "volumes": list(Volume.objects.filter(host=host).values_list("name", flat=True)),
        "images": Image.objects.filter(host=host).count(),
        "operations": Operation.objects.filter(host=host).count(),
    }
    try:
        with transaction.atomic():
            Operation.objects.filter(host=host).delete()
            Container.objects.filter(host=host).delete()
            Network.objects.filter(host=host).delete()
            Volume.objects.filter(host=host).delete()
            Host.objects.filter(pk=host.pk).delete()  # images, join tokens: CASCADE
            # Names capped: the audit row stays readable for a host that held thousands.
            record = {k: (v[:50] if isinstance(v, list) else v) for k, v in held.items()}
            gate.record(decision, summary={**(summary or {}), "forgot": record})
    except ProtectedError as err:
        # Another app's row points at what the host held: nothing was deleted; say which.
        kinds = sorted({obj._meta.verbose_name_plural for obj in err.protected_objects})
        raise Conflict(
            f"host {host.name} cannot be forgotten: {', '.join(kinds)} still refer to what it held",
            code="host_referenced",
        ) from None
    return held
