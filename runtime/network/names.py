"""Names between containers: hosts-file entries for peers, aliases, --link and --add-host.

Docker's embedded DNS answers these names; here each member's hosts file carries them and is
rewritten whenever a member joins or leaves one of its user-defined networks.
"""

from __future__ import annotations

from runtime.errors import InvalidSpec, NotFound
from runtime.network import dnsfiles
from runtime.network.state import NetState
from runtime.spec import NetworkSpec, is_full_id


def extra_hosts(spec: NetworkSpec) -> list:
    """--add-host entries "host:ip" as [ip, [host]]."""
    entries = []
    for item in spec.extra_hosts:
        host, _, ip = item.partition(":")
        entries.append([ip, [host]])
    return entries


def find_endpoint(state: NetState, ref: str) -> dict | None:
    """The attached container called `ref` (name or full id), or None."""
    if is_full_id(ref):
        return state.endpoints.get(ref)  # an id is only ever an id, never a name
    return state.endpoints.named(ref)


def resolve_links(state: NetState, links: list[str], networks: dict) -> list:
    """--link name[:alias] as [ip, [alias, name]], the target's address on a shared network."""
    entries = []
    for link in links:
        target, _, alias = link.partition(":")
        ep = find_endpoint(state, target)
        if ep is None:
            raise NotFound(f"cannot link to {target}: no such running container")
        shared = [n for n in networks if n in ep["networks"]]
        if not shared:
            raise InvalidSpec(f"cannot link to {target}: it is not on a network of this container")
        entries.append([ep["networks"][shared[0]]["ip"], [alias or target, target]])
    return entries


def _user_networks(state: NetState, names) -> set[str]:
    # The default network resolves names only through --link, as in Docker.
    return {n for n in names if not state.networks.get(n, {}).get("default", True)}


def hosts_text(state: NetState, ep: dict) -> str:
    """The whole hosts file of endpoint `ep`: itself, its peers, its links and extra hosts."""
    own_names = [ep["hostname"], ep.get("name") or ""]
    own = []
    for ep_net in ep["networks"].values():
        own.append((ep_net["ip"], own_names + ep_net.get("aliases", [])))
        own_names = [ep["hostname"]]  # name and aliases point at the first network's address
    others = [(ip, names) for ip, names in ep.get("links", [])]
    for net_name in sorted(_user_networks(state, ep["networks"])):
        for cid, peer in state.endpoints.on_network(net_name):
            if cid != ep["cid"]:
                peer_net = peer["networks"][net_name]
                names = [peer.get("name") or "", *peer_net.get("aliases", []), cid[:12]]
                others.append((peer_net["ip"], names))
    others += [tuple(e) for e in ep.get("extra_hosts", [])]
    return dnsfiles.hosts_file(own, others)


def write_hosts(state: NetState, ep: dict) -> None:
    """Write the endpoint's hosts file (in place: it is bind-mounted into the container)."""
    dnsfiles.write_in_place(ep["files"].get("hosts"), hosts_text(state, ep))


def refresh_peers(state: NetState, changed: dict, skip: str) -> None:
    """Rewrite the hosts files of containers sharing a user-defined network with `changed`."""
    nets = _user_networks(state, changed["networks"])
    if not nets:
        return
    peers = {cid: peer for net in nets for cid, peer in state.endpoints.on_network(net)}
    for cid, peer in sorted(peers.items()):
        if cid != skip:
            write_hosts(state, peer)
