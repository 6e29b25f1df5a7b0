"""Connect a container to a network, or disconnect it (operations container.network_connect
and container.network_disconnect): the runtime changes the container, then the row's spec.

The agent re-checks the network against the container's team on this host before it acts
(defense in depth, as for a create: containers/references.verify).
"""

from agent import lookup, observe
from containers import references
from containers.models import Container
from runtime.errors import InvalidSpec, NotFound


def _state(rt, container) -> dict:
    state = lookup.find(rt, container)
    if state is None:
        raise NotFound(f"container {container.name} does not exist on host {container.host.name}")
    return state


def _save_networks(container, networks: list[str], aliases: list[str]) -> None:
    spec = dict(container.spec)
    network = dict(spec.get("network") or {})
    network["networks"] = networks
    network["aliases"] = aliases
    spec["network"] = network
    Container.objects.filter(id=container.id).update(spec=spec)
    container.spec = spec


def _recorded(container, state: dict) -> dict:
    """Write the runtime's answer to the row: its networks and aliases, then its state."""
    network = state.get("spec", {}).get("network") or {}
    _save_networks(container, network.get("networks") or [], network.get("aliases") or [])
    observe.record(container, state)
    return observe.snapshot(state)


def connect(rt, op, container):
    """Join the network (at once when running), then record it in the row's spec."""
    name = op.params.get("network")
    aliases = [a for a in op.params.get("aliases") or [] if isinstance(a, str)]
    if not isinstance(name, str) or not name:
        raise InvalidSpec("network connect needs a network")
    problems = references.verify(
        {"network": {"networks": [name]}}, team_id=container.team_id, host_id=container.host_id
    )
    if problems:
        raise InvalidSpec("refused by the host policy: " + "; ".join(problems))
    state = rt.connect_network(
        _state(rt, container)["id"], name, aliases, op.params.get("ip_address")
    )
    return _recorded(container, state)


def disconnect(rt, op, container):
    """Leave the network (at once when running), then record it in the row's spec."""
    name = op.params.get("network")
    if not isinstance(name, str) or not name:
        raise InvalidSpec("network disconnect needs a network")
    state = rt.disconnect_network(_state(rt, container)["id"], name)
    return _recorded(container, state)


CONTAINER_HANDLERS = {"network_connect": connect, "network_disconnect": disconnect}
