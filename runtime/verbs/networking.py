"""Runtime verbs that change a container's networks after create: connect and disconnect.

The record's spec is what a later start wires, so it always changes; a running (or paused)
container is also wired now (runtime/network/connect.py). Docker does the same for
`docker network connect` and `disconnect`.
"""

from __future__ import annotations

from runtime.container import status as sm
from runtime.container.fsutil import write_json
from runtime.errors import Conflict, InvalidSpec, NotFound
from runtime.network import connect as live
from runtime.spec import ContainerSpec

DEFAULT_NETWORK = "bridge"


def _bridge_networks(spec: dict, name: str) -> tuple[dict, list[str]]:
    network = spec.setdefault("network", {})
    mode = network.get("mode") or "bridge"
    if mode != "bridge":
        raise InvalidSpec(f"container {name} uses network mode {mode}; it joins no networks")
    return network, list(network.get("networks") or [DEFAULT_NETWORK])


class NetworkVerbs:
    """connect_network and disconnect_network (mixed into runtime.api.Runtime)."""

    def _network_name(self, ref: str) -> str:
        return self.networks.resolve(self.networks.store.load(), ref)

    def _write_network_file(self, cid: str) -> None:
        """What inspect shows as the container's network: the endpoint as it is now."""
        write_json(self.store.paths(cid).network_file, self.networks.endpoint(cid) or {})

    def connect_network(self, ref: str, network: str, aliases=(), ip: str | None = None) -> dict:
        """Join `network` now if the container runs, and at every later start; the state dict."""
        cid = self.store.resolve(ref)
        target = self._network_name(network)
        with self.store.locked(cid):
            rec, obs = self._observe(cid)
            spec = dict(rec["spec"])
            network_spec, current = _bridge_networks(spec, rec["name"])
            if target in current:
                raise Conflict(f"container {rec['name']} is already connected to network {target}")
            running = obs["status"] in (sm.RUNNING, sm.PAUSED)
            if ip and not running:
                raise InvalidSpec("a fixed address on another network needs the container running")
            network_spec["networks"] = [*current, target]
            merged = list(network_spec.get("aliases") or [])
            network_spec["aliases"] = merged + [a for a in aliases if a not in merged]
            ContainerSpec.from_dict(spec)  # the new spec must still be valid as a whole
            if running:
                live.connect(self.networks, cid, target, aliases, ip)
            rec["spec"] = spec
            try:
                self.store.write_record(rec)
            except BaseException:
                if running:
                    live.disconnect(self.networks, cid, target)
                raise
            if running:
                self._write_network_file(cid)
        return self.state(cid)

    def disconnect_network(self, ref: str, network: str) -> dict:
        """Leave `network` now if the container runs, and at every later start; the state dict."""
        cid = self.store.resolve(ref)
        target = self._network_name(network)
        with self.store.locked(cid):
            rec, obs = self._observe(cid)
            spec = dict(rec["spec"])
            network_spec, current = _bridge_networks(spec, rec["name"])
            if target not in current:
                raise NotFound(f"container {rec['name']} is not connected to network {target}")
            if current == [target]:
                raise Conflict(
                    f"network {target} is the only network of container {rec['name']}; "
                    "a container keeps at least one (use network mode none instead)"
                )
            running = obs["status"] in (sm.RUNNING, sm.PAUSED)
            if running:
                live.disconnect(self.networks, cid, target)
            network_spec["networks"] = [n for n in current if n != target]
            rec["spec"] = spec
            self.store.write_record(rec)
            if running:
                self._write_network_file(cid)
        return self.state(cid)
