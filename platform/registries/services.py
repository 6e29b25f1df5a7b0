"""Image actions on the web side, shared by the REST API and the dashboard: decide, audit, queue."""

import ipaddress

from config.errors import Conflict, InvalidRequest
from config.ids import as_id, is_id
from hosts import placement
from operations.services import do_host_operation
from rbac import gate
from registries import refs
from registries.models import Registry


def _host_local(address: str) -> bool:
    """Whether host[:port] names this host or a private network (loopback, link-local, RFC 1918)."""
    host = address.lower()
    host = host[1:].partition("]")[0] if host.startswith("[") else host.rpartition(":")[0] or host
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return False  # a name: resolved by the agent (not checked here; see the security notes)
    return not ip.is_global


def check_reachable(user, ref: str, registry, *, summary=None) -> None:
    """A reference outside a configured registry may not point at host-local addresses.

    The agent fetches as root on the host: `127.0.0.1:6379/x` or `169.254.169.254/x` would
    reach services only the host should reach. Admins (registry.manage) configure such
    registries; everyone else uses them through registry.use. Refusals are audited.
    """
    if registry is not None:
        return
    address = refs.registry_of(ref)
    if _host_local(address):
        gate.require(user, "registry.manage", resource="registry", summary=summary)


def usable_registry(user, value, *, summary=None):
    """(registry, allowed registry.use decision) for a name or id; (None, None) when not given.

    Refusals are audited and raised (403); a registry the user may not use looks unknown (400).
    """
    if value in (None, ""):
        return None, None
    gate.require(user, "registry.use", resource="registry", summary=summary)
    usable = gate.restrict(Registry.objects.all(), user, "registry.use")
    lookup = {"pk": as_id(value)} if is_id(value) else {"name": value}
    registry = usable.filter(**lookup).first()
    if registry is None:
        raise InvalidRequest(f"unknown registry {value!r}")
    decision = gate.require(user, "registry.use", registry, resource="registry", summary=summary)
    return registry, decision


def place_ref(ref: str, registry) -> str:
    """The reference inside `registry` (prefixed when it names none); refused if it is elsewhere."""
    if registry is None:
        return ref
    placed = refs.in_registry(ref, registry.address)
    if not registry.owns(placed):
        raise InvalidRequest(
            f"{placed} names registry {refs.registry_of(placed)}, not {registry.address}"
        )
    return placed


def do_image_operation(
    decision,
    *,
    kind,
    host,
    acting_user,
    team=None,
    target_id="",
    params=None,
    summary=None,
    extra=(),
    quota=None,
):
    """Queue an image Operation; `extra` allowed decisions (registry.use) are audited with it.

    A host that is removed, not joined or down is refused (409, audited as failed) before
    anything is written: nobody would take the work, and a pull or build would wait for ever.
    A cordoned host still pulls and builds: cordoning stops new containers only. `quota`
    ({"refs": tags, "size": bytes}) checks the team's image quotas in the writing transaction
    (images/quota_check.py; refused 403, audited, nothing queued)."""
    from containers import quotas
    from images import quota_check

    reason = placement.unreachable(host)
    if reason:
        gate.record(decision, summary=summary, outcome=gate.FAILED, reason=reason)
        raise Conflict(reason, code="host_unavailable")
    others = [d for d in extra if d is not None]
    limited = quota is not None and team is not None and bool(team.quotas)

    def before():
        if limited:
            quota_check.enforce(team, host, refs=quota.get("refs") or (), size=quota.get("size", 0))
        for other in others:
            gate.record(other, summary=summary)

    with quotas.guarded(decision, summary):
        return do_host_operation(
            decision,
            kind=kind,
            target_type="image",
            target_id=str(target_id)[:64],
            host=host,
            team=team,
            params=params or {},
            acting_user=acting_user,
            summary=summary,
            before=before if others or limited else None,
        )


def do_pull_image(user, *, ref, host, team=None, registry=None, summary=None):
    """Decide image.pull (and registry.use) for `user` and queue the pull; returns the Operation."""
    from images import ownership
    from images.models import Image

    registry, use = usable_registry(user, registry, summary=summary)
    ref = place_ref(ref, registry)
    check_reachable(user, ref, registry, summary=summary)
    decision = gate.require(
        user, "image.pull", Image(host=host, team=team), resource="image", summary=summary
    )
    ownership.check_tag_free(user, host, ref, team, summary=summary)
    return do_image_operation(
        decision,
        kind="image.pull",
        host=host,
        team=team,
        target_id=ref,
        params={
            "ref": ref,
            "registry": registry.pk if registry else None,
            "private": team is not None,
        },
        acting_user=user,
        summary=(summary or {}) | {"ref": ref, "registry": registry.name if registry else ""},
        extra=[use],
        quota={"refs": [ref]},
    )
