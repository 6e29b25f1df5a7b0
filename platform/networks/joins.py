"""Connect a container to one more network of its team, or disconnect it from one (the
`docker network connect` / `disconnect` of Berth): decided by the gate, audited, done by the host.

The decision is `container.change` on the container (it changes what the container can reach);
the network must be visible to the caller, on the container's host and of the container's team
(or the host's default network). The host changes the container's stored spec, and wires it at
once when it runs (runtime/verbs/networking.py); the agent then writes the row's spec.
"""

import re

from django.db import transaction

from audit import context
from config.errors import Conflict, InvalidRequest
from containers import references
from containers.services import check_broker
from operations import dispatch
from rbac import gate

ALIAS_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
MAX_ALIASES = 16


def _networks_of(container) -> list[str]:
    network = container.spec.get("network") or {}
    mode = network.get("mode") or "bridge"
    if mode != "bridge":
        raise Conflict(f"container {container.name} uses network mode {mode}; it joins no networks")
    return list(network.get("networks") or [references.DEFAULT_NETWORK])


def _check_same_place(container, network) -> None:
    if network.host_id != container.host_id:
        raise InvalidRequest(
            f"network {network.name} is on host {network.host.name}, the container on "
            f"{container.host.name}"
        )
    if network.team_id != container.team_id:
        raise InvalidRequest(f"network {network.name} belongs to another team")


def _clean_aliases(aliases) -> list[str]:
    aliases = list(dict.fromkeys(aliases or []))
    if len(aliases) > MAX_ALIASES:
        raise InvalidRequest(f"at most {MAX_ALIASES} aliases")
    for alias in aliases:
        if not isinstance(alias, str) or not ALIAS_RE.match(alias):
            raise InvalidRequest(f"invalid alias {alias!r}")
    return aliases


def _queue(decision, container, kind, params, acting_user, summary):
    check_broker(decision, summary)
    with transaction.atomic():
        op = dispatch.new_operation(
            kind=kind,
            target_type="container",
            target_id=container.pk,
            host=container.host,
            team=container.team,
            params=params,
            user=acting_user,
            request_id=context.current().request_id,
        )
        gate.record(decision, summary=summary, operation=op)
        dispatch.send_after_commit(op)
    return op


def do_connect(container, network, *, aliases=(), ip_address=None, acting_user, summary=None):
    """Queue container.network_connect of `container` to `network` (a Network row)."""
    summary = (summary or {}) | {"network": network.name, "container": container.name}
    decision = gate.require(acting_user, "container.change", container, summary=summary)
    _check_same_place(container, network)
    if network.name in _networks_of(container):
        raise Conflict(f"container {container.name} is already connected to {network.name}")
    params = {"network": network.name, "aliases": _clean_aliases(aliases)}
    if ip_address:
        params["ip_address"] = str(ip_address)
    return _queue(decision, container, "container.network_connect", params, acting_user, summary)


def do_disconnect(container, network, *, acting_user, summary=None):
    """Queue container.network_disconnect of `container` from `network` (a Network row)."""
    summary = (summary or {}) | {"network": network.name, "container": container.name}
    decision = gate.require(acting_user, "container.change", container, summary=summary)
    _check_same_place(container, network)
    current = _networks_of(container)
    if network.name not in current:
        raise Conflict(f"container {container.name} is not connected to {network.name}")
    if current == [network.name]:
        raise Conflict(
            f"{network.name} is the only network of container {container.name}; a container "
            "keeps at least one"
        )
    return _queue(
        decision,
        container,
        "container.network_disconnect",
        {"network": network.name},
        acting_user,
        summary,
    )
