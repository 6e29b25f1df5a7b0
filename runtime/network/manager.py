"""NetworkManager: bridge networks, container endpoints and published ports on one host."""

from __future__ import annotations

import ipaddress
import os
import secrets
import time

from runtime.errors import Conflict, InvalidSpec, NotFound
from runtime.network import dnsfiles, foreign_ports, ipam, names, netlink, nft, ruleset
from runtime.network.ports import check_bindable, first_free_in_range, free_port, parse_exposed
from runtime.network.state import NetState, StateStore
from runtime.spec import NAME_RE, NetworkSpec, PortMapping

DEFAULT_NETWORK = "bridge"
RESERVED_NAMES = ("host", "none", "default")


class NetworkManager:
    """Creates bridge networks and wires containers into them (veth, address, port maps)."""

    def __init__(self, config):
        self.config = config
        self.prefix = config.prefix
        self.store = StateStore(config.networks_dir)
        self.links = netlink.Links()

    # ---- networks -------------------------------------------------------------------------

    def ensure_default(self, subnet: str | None = None, gateway: str | None = None) -> dict:
        """Create the default network `bridge` (bridge `<prefix>0`) unless it exists."""
        with self.store.locked() as state:
            if DEFAULT_NETWORK not in state.networks:
                self._create_locked(state, DEFAULT_NETWORK, subnet, gateway, default=True)
            return self._describe(state, DEFAULT_NETWORK)

    def create(self, name: str, subnet: str | None = None, gateway: str | None = None) -> dict:
        """Create a user-defined bridge network; Conflict if the name or subnet is taken."""
        with self.store.locked() as state:
            self._create_locked(state, name, subnet, gateway, default=name == DEFAULT_NETWORK)
            return self._describe(state, name)

    def list(self) -> list[dict]:
        """Every network, default first."""
        state = self.store.load()
        names = sorted(state.networks, key=lambda n: (n != DEFAULT_NETWORK, n))
        return [self._describe(state, n) for n in names]

    def inspect(self, name: str) -> dict:
        """One network with its containers; NotFound if unknown."""
        state = self.store.load()
        return self._describe(state, self._resolve(state, name))

    def remove(self, name: str, users=()) -> None:
        """Remove a network and its bridge; Conflict while a container uses it.

        `users` names the containers (running or stopped) whose spec names the network: the
        caller knows the container store, this manager only sees attached containers.
        """
        with self.store.locked() as state:
            name = self._resolve(state, name)
            if state.networks[name].get("default"):
                raise Conflict(f"{name} is the pre-defined default network and cannot be removed")
            attached = {ep.get("name") or cid for cid, ep in state.endpoints.on_network(name)}
            users = attached | {str(u) for u in users}
            if users:
                raise Conflict(
                    f"network {name} is in use by container(s): {', '.join(sorted(users))}"
                )
            net = state.networks.pop(name)
            self._apply_rules(state)
            self.store.save(state)
            self.links.delete(net["bridge"])

    def users(self, name: str, containers) -> list[str]:
        """Names (or ids) of `containers` (runtime state dicts) whose spec names network `name`."""
        state = self.store.load()
        name = self._resolve(state, name)
        found = []
        for c in containers:
            wanted = ((c.get("spec") or {}).get("network") or {}).get("networks") or []
            if any(_refers_to(state, ref, name) for ref in wanted):
                found.append(c.get("name") or c["id"])
        return found

    def resolve(self, state: NetState, ref: str) -> str:
        """The network that `ref` (a name or an id prefix) names in `state`; NotFound if none."""
        return self._resolve(state, ref)

    def _resolve(self, state: NetState, ref: str) -> str:
        if ref in state.networks:
            return ref
        matches = [
            n for n, net in state.networks.items() if len(ref) >= 3 and net["id"].startswith(ref)
        ]
        if len(matches) == 1:
            return matches[0]
        raise NotFound(f"network {ref} not found")

    def _create_locked(self, state: NetState, name: str, subnet, gateway, default: bool) -> None:
        if not isinstance(name, str) or not NAME_RE.match(name):
            raise InvalidSpec(
                f"invalid network name {name!r}: only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"
            )
        if name in RESERVED_NAMES:
            raise InvalidSpec(f"network name {name!r} is reserved")
        if name in state.networks:
            raise Conflict(f"network with name {name} already exists")
        taken = {n: ipaddress.IPv4Network(net["subnet"]) for n, net in state.networks.items()}
        routes = [r for r in ipam.host_routes() if r not in taken.values()]
        if subnet is None and default:
            subnet = self.config.extra.get("default_subnet")
            gateway = gateway or self.config.extra.get("default_gateway")
        if subnet is None:
            if gateway is not None:
                raise InvalidSpec("a gateway needs a subnet")
            net = ipam.pick_subnet(
                taken, routes, self.config.extra.get("subnet_pool", ipam.DEFAULT_POOL)
            )
        else:
            net = ipam.parse_subnet(subnet)
            ipam.check_free(net, taken, routes)
        gw = ipam.parse_gateway(gateway, net)
        net_id = secrets.token_hex(32)
        bridge = f"{self.prefix}0" if default else f"{self.prefix}br{net_id}"[:15]
        record = {
            "name": name,
            "id": net_id,
            "driver": "bridge",
            "subnet": str(net),
            "gateway": gw,
            "bridge": bridge,
            "default": default,
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        state.networks[name] = record
        try:
            self.links.ensure_bridge(bridge, gw, net.prefixlen)
            self._apply_rules(state)
            self.store.save(state)
        except BaseException:
            del state.networks[name]
            self.links.delete(bridge)
            self._apply_rules(state)
            raise

    def _describe(self, state: NetState, name: str) -> dict:
        net = dict(state.networks[name])
        net["containers"] = {
            cid: {"name": ep.get("name"), **ep["networks"][name]}
            for cid, ep in state.endpoints.on_network(name)
        }
        return net

    # ---- rules ----------------------------------------------------------------------------

    def _apply_rules(self, state: NetState) -> None:
        """Rewrite Berth's nft table from `state` in one transaction (or drop it when empty)."""
        networks = list(state.networks.values())
        ports = state.endpoints.published()
        if not networks and not ports:
            nft.delete_table(ruleset.FAMILY, self.prefix)
            return
        nft.run(ruleset.render(self.prefix, networks, ports))

    # ---- containers -----------------------------------------------------------------------

    def attach(
        self,
        cid: str,
        name: str | None,
        pid: int,
        spec: NetworkSpec,
        hostname: str | None = None,
        exposed_ports=None,
        files: dict | None = None,
    ) -> dict:
        """Wire container `cid` (process `pid`, netns already made) as its NetworkSpec says."""
        files = files or {}
        hostname = hostname or cid[:12]
        if spec.mode == "host":
            dnsfiles.write_in_place(files.get("resolv.conf"), _read("/etc/resolv.conf"))
            dnsfiles.write_in_place(files.get("hosts"), _read("/etc/hosts"))
            return {"networks": {}, "ports": []}
        if spec.mode.startswith("container:"):
            return {"networks": {}, "ports": []}  # the other container's stack and files
        if spec.mode == "none":
            netlink.loopback_up(pid)
            return self.isolated_files(spec, files)
        resolv = dnsfiles.resolv_conf(spec.dns, spec.dns_search)
        wanted = list(dict.fromkeys(spec.networks or [DEFAULT_NETWORK]))
        with self.store.locked() as state:
            if DEFAULT_NETWORK in wanted and DEFAULT_NETWORK not in state.networks:
                self._create_locked(state, DEFAULT_NETWORK, None, None, default=True)
            wanted = [self._resolve(state, n) for n in wanted]
            netns_fd = netlink.open_netns(pid)
            try:
                inode = os.fstat(netns_fd).st_ino
                if inode == os.stat("/proc/self/ns/net").st_ino:
                    # Wiring "the container" would then rewire the host itself.
                    raise InvalidSpec(f"process {pid} shares the host's network namespace")
                old = state.endpoints.get(cid)
                if old and old.get("netns") == inode and old.get("pid") == pid:
                    return _result(old)  # already attached: attach is idempotent
                old_ep = state.endpoints.pop(cid, None)
                endpoint = self._plan(
                    state, cid, name, pid, inode, spec, hostname, exposed_ports, files
                )
                self._wire(state, endpoint, netns_fd, old_ep)
            finally:
                os.close(netns_fd)
            dnsfiles.write_in_place(files.get("resolv.conf"), resolv)
            names.refresh_peers(state, endpoint, skip=cid)
            return _result(endpoint)

    @staticmethod
    def isolated_files(spec: NetworkSpec, files: dict) -> dict:
        """`--network none`'s part without its netns: the resolv.conf and hosts files (the
        launcher writes them before the fork; `lo` is then brought up by the init itself)."""
        resolv = dnsfiles.resolv_conf(spec.dns, spec.dns_search)
        dnsfiles.write_in_place(files.get("resolv.conf"), resolv)
        dnsfiles.write_in_place(
            files.get("hosts"), dnsfiles.hosts_file([], names.extra_hosts(spec))
        )
        return {"networks": {}, "ports": []}

    def _plan(self, state, cid, name, pid, inode, spec, hostname, exposed_ports, files) -> dict:
        """Choose addresses, MACs, veth names and host ports; touches nothing on the host."""
        networks = {}
        for i, net_name in enumerate(dict.fromkeys(spec.networks or [DEFAULT_NETWORK])):
            net_name = self._resolve(state, net_name)
            net = state.networks[net_name]
            subnet = ipaddress.IPv4Network(net["subnet"])
            ip = ipam.allocate(
                subnet,
                net["gateway"],
                state.endpoints.held(net_name, "ip"),
                spec.ip_address if i == 0 else None,
                after=net.get("last_ip"),
            )
            mac = (
                spec.mac_address.lower() if i == 0 and spec.mac_address else None
            ) or ipam.mac_for(ip)
            if mac in state.endpoints.held(net_name, "mac"):
                raise Conflict(f"MAC address {mac} is already used on network {net_name}")
            networks[net_name] = {
                "ip": ip,
                "mac": mac,
                "gateway": net["gateway"],
                "prefixlen": subnet.prefixlen,
                "ifname": f"eth{i}",
                "veth": f"{self.prefix}{secrets.token_hex(4)}"[:15],
                "aliases": list(spec.aliases) if not net.get("default") else [],
            }
        primary = next(iter(networks.values()))
        return {
            "cid": cid,
            "name": name,
            "pid": pid,
            "netns": inode,
            "hostname": hostname,
            "files": {k: str(v) for k, v in files.items() if k in ("hosts", "resolv.conf")},
            "networks": networks,
            "links": names.resolve_links(state, spec.links, networks),
            "extra_hosts": names.extra_hosts(spec),
            "ports": self._plan_ports(state, spec, exposed_ports, primary["ip"]),
        }

    def _plan_ports(self, state, spec: NetworkSpec, exposed_ports, container_ip: str) -> list[dict]:
        mappings = list(spec.ports)
        if spec.publish_all:
            given = {(m.container_port, m.protocol) for m in mappings}
            for port, proto in parse_exposed(exposed_ports):
                if (port, proto) not in given:
                    mappings.append(PortMapping(container_port=port, protocol=proto))
        if not mappings:
            return []
        taken = [
            (p["protocol"], p.get("host_ip", ""), p["host_port"])
            for p in state.endpoints.published()
        ]
        planned = []
        # Port forwards of other tables (another installation, Docker, Podman) hold no socket
        # either: read once per plan, only when a port is published (network/foreign_ports.py).
        held = foreign_ports.held(self.prefix) if mappings else []
        for m in mappings:
            m.validate()
            host_ip = "" if m.host_ip in ("", "0.0.0.0") else m.host_ip
            port = m.host_port
            # Berth's own maps hold no host socket, so they are checked from the state.
            published = {
                used
                for proto, ip, used in taken
                if proto == m.protocol and (not ip or not host_ip or ip == host_ip)
            }
            published |= {
                h.port
                for h in held
                if h.protocol == m.protocol
                and (not h.address or not host_ip or h.address == host_ip)
            }
            if port == 0:
                port = free_port(
                    host_ip,
                    m.protocol,
                    {(pr, po) for pr, _, po in taken} | {(m.protocol, po) for po in published},
                )
            elif m.host_port_end:
                port = first_free_in_range(
                    host_ip, m.protocol, m.host_port, m.host_port_end, published
                )
            else:
                foreign_ports.refuse_if_held(held, m.protocol, host_ip, port)
                if port in published:
                    raise Conflict(
                        f"host port {host_ip or '0.0.0.0'}:{port}/{m.protocol} is already published by Berth"
                    )
                check_bindable(host_ip, port, m.protocol)
            taken.append((m.protocol, host_ip, port))
            planned.append(
                {
                    "host_ip": host_ip,
                    "host_port": port,
                    "container_port": m.container_port,
                    "protocol": m.protocol,
                    "ip": container_ip,
                }
            )
        return planned

    def _wire(self, state: NetState, endpoint: dict, netns_fd: int, old_ep: dict | None) -> None:
        """Create the veths, configure the netns, publish ports, write files, save; or undo all."""
        created = []
        rules_changed = bool(endpoint["ports"] or (old_ep and old_ep.get("ports")))
        try:
            interfaces = []
            for net_name, ep_net in endpoint["networks"].items():
                net = state.networks[net_name]
                bridge_index = self.links.index(net["bridge"])
                if bridge_index is None:  # after a reboot or an outside `ip link del`
                    bridge_index = self.links.ensure_bridge(
                        net["bridge"], net["gateway"], ep_net["prefixlen"]
                    )
                self.links.add_veth(
                    ep_net["veth"],
                    bridge_index,
                    netns_fd,
                    ep_net["ifname"],
                    ep_net["mac"],
                    ep_net["ip"],
                )
                created.append(ep_net["veth"])
                self.links.set_hairpin(ep_net["veth"])
                interfaces.append(ep_net)
            gateway = interfaces[0]["gateway"]
            netlink.in_netns(netns_fd, lambda: netlink.configure_inside(interfaces, gateway))
            names.write_hosts(state, endpoint)
            state.endpoints[endpoint["cid"]] = endpoint
            for net_name, ep_net in endpoint["networks"].items():
                state.networks[net_name]["last_ip"] = ep_net["ip"]
            if rules_changed:
                self._apply_rules(state)
            self.store.save(state)
        except BaseException:
            state.endpoints.pop(endpoint["cid"], None)
            for veth in created:
                self.links.delete(veth)
            if rules_changed:
                self._apply_rules(state)
            raise

    def detach(self, cid: str) -> None:
        """Release the container's addresses and port maps; idempotent."""
        with self.store.locked() as state:
            endpoint = state.endpoints.pop(cid, None)
            if endpoint is None:
                return
            if endpoint.get("ports"):
                self._apply_rules(state)
            self.store.save(state)
            # A still-running container (disconnect) keeps its netns: remove its veths here.
            # A stopped one lost its netns, and the kernel frees the veths by itself.
            if netlink.netns_inode(endpoint["pid"]) == endpoint.get("netns"):
                for ep_net in endpoint["networks"].values():
                    self.links.delete(ep_net["veth"])
            names.refresh_peers(state, endpoint, skip=cid)

    def restore(self) -> list[str]:
        """Re-create bridges and the nft table after a reboot or agent restart.

        Endpoints whose process (or netns) is gone are released; returns their container ids.
        """
        with self.store.locked() as state:
            gone = [
                cid
                for cid, ep in state.endpoints.items()
                if netlink.netns_inode(ep["pid"]) != ep.get("netns")
            ]
            dropped = [state.endpoints.pop(cid) for cid in gone]
            bridges = {}
            for name, net in state.networks.items():
                prefixlen = ipaddress.IPv4Network(net["subnet"]).prefixlen
                bridges[name] = self.links.ensure_bridge(net["bridge"], net["gateway"], prefixlen)
            # A bridge deleted and re-created under running containers lost its ports.
            for ep in state.endpoints.values():
                for net_name, ep_net in ep["networks"].items():
                    self.links.set_master(ep_net["veth"], bridges[net_name])
            self._apply_rules(state)
            if dropped:
                self.store.save(state)
            for endpoint in dropped:
                names.refresh_peers(state, endpoint, skip=endpoint["cid"])
        return gone

    def endpoint(self, cid: str) -> dict | None:
        """What attach() returned for `cid`, or None."""
        ep = self.store.load().endpoints.get(cid)
        return _result(ep) if ep else None

    def purge(self) -> None:
        """Remove every network, endpoint, bridge and the nft table of this prefix (tests, uninstall)."""
        with self.store.locked() as state:
            for ep in state.endpoints.values():
                for ep_net in ep["networks"].values():
                    self.links.delete(ep_net["veth"])
            for net in state.networks.values():
                self.links.delete(net["bridge"])
            nft.delete_table(ruleset.FAMILY, self.prefix)
            self.store.remove()

    def close(self) -> None:
        """Close the netlink socket."""
        self.links.close()


def _refers_to(state: NetState, ref, name: str) -> bool:
    """Whether a network reference in a spec (name or id prefix) means network `name`."""
    if ref == name:
        return True
    net_id = state.networks[name]["id"]
    return isinstance(ref, str) and len(ref) >= 3 and net_id.startswith(ref)


def _result(ep: dict) -> dict:
    return {
        "networks": {
            n: {k: v[k] for k in ("ip", "mac", "gateway", "prefixlen", "ifname")}
            for n, v in ep["networks"].items()
        },
        "ports": [dict(p) for p in ep.get("ports", [])],
    }


def _read(path: str) -> str:
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return ""
