"""Connect a running container to one more network, or disconnect it from one (docker network
connect/disconnect), without restarting it.

The container's first network stays as it is: it carries the default route and the published
ports (their DNAT targets its address), so it cannot be disconnected while the container runs.
Every other network is one veth more (eth1, eth2, ...) with an address of that network, and
names in the hosts files of the peers on it. A failure undoes what was made: no veth, no
address, no state entry is left.
"""

from __future__ import annotations

import ipaddress
import os
import secrets

from runtime.errors import Conflict, NotFound
from runtime.network import ipam, names, netlink
from runtime.network.state import NetState


def _endpoint(state: NetState, cid: str) -> dict:
    endpoint = state.endpoints.get(cid)
    if endpoint is None:
        raise Conflict(
            "the container is not running on a bridge network: connect it while it runs, or "
            "change its networks before it starts"
        )
    return endpoint


def _free_ifname(endpoint: dict) -> str:
    taken = {ep_net["ifname"] for ep_net in endpoint["networks"].values()}
    return next(f"eth{i}" for i in range(len(taken) + 1) if f"eth{i}" not in taken)


def _plan(manager, state: NetState, endpoint: dict, net_name: str, aliases, ip) -> dict:
    """The new interface's address, MAC, names; touches nothing on the host."""
    net = state.networks[net_name]
    subnet = ipaddress.IPv4Network(net["subnet"])
    address = ipam.allocate(
        subnet, net["gateway"], state.endpoints.held(net_name, "ip"), ip, after=net.get("last_ip")
    )
    mac = ipam.mac_for(address)
    if mac in state.endpoints.held(net_name, "mac"):
        raise Conflict(f"MAC address {mac} is already used on network {net_name}")
    return {
        "ip": address,
        "mac": mac,
        "gateway": net["gateway"],
        "prefixlen": subnet.prefixlen,
        "ifname": _free_ifname(endpoint),
        "veth": f"{manager.prefix}{secrets.token_hex(4)}"[:15],
        "aliases": list(aliases) if not net.get("default") else [],
    }


def connect(manager, cid: str, network: str, aliases=(), ip: str | None = None) -> dict:
    """Add an interface on `network` to running container `cid`; returns its network dict."""
    with manager.store.locked() as state:
        endpoint = _endpoint(state, cid)
        net_name = manager.resolve(state, network)
        if net_name in endpoint["networks"]:
            raise Conflict(f"the container is already connected to network {net_name}")
        netns_fd = netlink.open_netns(endpoint["pid"])
        try:
            if os.fstat(netns_fd).st_ino != endpoint.get("netns"):
                raise Conflict("the container is not running")
            ep_net = _plan(manager, state, endpoint, net_name, aliases, ip)
            _wire(manager, state, endpoint, net_name, ep_net, netns_fd)
        finally:
            os.close(netns_fd)
        names.refresh_peers(state, endpoint, skip=cid)
        return {net_name: {k: ep_net[k] for k in ("ip", "mac", "gateway", "prefixlen", "ifname")}}


def _wire(manager, state, endpoint, net_name, ep_net, netns_fd) -> None:
    """Create the veth, configure it inside (no route change), save; or undo it all."""
    net = state.networks[net_name]
    created = False
    try:
        bridge_index = manager.links.index(net["bridge"])
        if bridge_index is None:  # after a reboot or an outside `ip link del`
            bridge_index = manager.links.ensure_bridge(
                net["bridge"], net["gateway"], ep_net["prefixlen"]
            )
        manager.links.add_veth(
            ep_net["veth"], bridge_index, netns_fd, ep_net["ifname"], ep_net["mac"], ep_net["ip"]
        )
        created = True
        manager.links.set_hairpin(ep_net["veth"])
        netlink.in_netns(netns_fd, lambda: netlink.configure_inside([ep_net], None))
        endpoint["networks"][net_name] = ep_net
        names.write_hosts(state, endpoint)
        net["last_ip"] = ep_net["ip"]
        manager.store.save(state)
    except BaseException:
        endpoint["networks"].pop(net_name, None)
        if created:
            manager.links.delete(ep_net["veth"])
        raise


def disconnect(manager, cid: str, network: str) -> None:
    """Remove running container `cid`'s interface on `network` (not its first network)."""
    with manager.store.locked() as state:
        endpoint = _endpoint(state, cid)
        net_name = manager.resolve(state, network)
        if net_name not in endpoint["networks"]:
            raise NotFound(f"the container is not connected to network {net_name}")
        if next(iter(endpoint["networks"])) == net_name:
            raise Conflict(
                f"network {net_name} is the container's first network (its default route and "
                "published ports): stop the container to change it"
            )
        ep_net = endpoint["networks"].pop(net_name)
        # Deleting the host end removes the pair; the container sees its interface vanish.
        manager.links.delete(ep_net["veth"])
        names.write_hosts(state, endpoint)
        manager.store.save(state)
        # The peers on that network lose the container's name.
        names.refresh_peers(state, {"networks": {net_name: ep_net}}, skip=cid)
