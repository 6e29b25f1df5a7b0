"""Render Berth's whole nftables table from the network state (applied as one transaction)."""

from __future__ import annotations

FAMILY = "ip"
PROTOCOLS = ("tcp", "udp")


def render(table: str, networks: list[dict], ports: list[dict]) -> str:
    """The nft script that replaces table `ip <table>` with rules for these networks and ports.

    `networks`: dicts with bridge and subnet; `ports`: published ports with host_ip, host_port,
    protocol, ip (container address) and container_port. The leading "add table" makes the
    "delete table" safe when the table does not exist yet; all three run in one transaction,
    so packets see either the old rules or the new ones.
    """
    # Published ports live in four maps (protocol x any/one host address) rather than one
    # rule each: nft parses map elements about three times faster than rules, and the
    # publish chain stays four lines however many ports there are.
    elements: dict[str, list[str]] = {
        f"{proto}_{scope}": [] for proto in PROTOCOLS for scope in ("ip", "any")
    }
    for p in sorted(ports, key=lambda p: (p["protocol"], p["host_port"], p.get("host_ip", ""))):
        target = f"{p['ip']} . {p['container_port']}"
        if p.get("host_ip") and p["host_ip"] != "0.0.0.0":
            elements[f"{p['protocol']}_ip"].append(f"{p['host_ip']} . {p['host_port']} : {target}")
        else:
            elements[f"{p['protocol']}_any"].append(f"{p['host_port']} : {target}")
    maps = [_map(name, items) for name, items in elements.items()]
    publish = []
    for proto in PROTOCOLS:  # a specific host address wins over "any address"
        publish.append(f"dnat ip to ip daddr . {proto} dport map @{proto}_ip")
        publish.append(f"dnat ip to {proto} dport map @{proto}_any")
    post, forward, drops, guard = [], [], [], []
    for net in networks:
        br, subnet = net["bridge"], net["subnet"]
        post += [
            # 127.0.0.1:hostport from the host: the DNATed packet leaves through the bridge with
            # a loopback source (allowed by route_localnet on the bridge only); hide it.
            f'ip saddr 127.0.0.0/8 oifname "{br}" masquerade',
            # Hairpin: a container reaching a published port of its own network must see the
            # answer come back from the address it talked to.
            f'ip saddr {subnet} oifname "{br}" ct status dnat masquerade',
            # Outbound: containers leave with the host's address.
            f'ip saddr {subnet} oifname != "{br}" masquerade',
        ]
        forward += [
            f'oifname "{br}" ct state established,related accept',
            f'oifname "{br}" ct status dnat accept',
            f'iifname "{br}" oifname "{br}" accept',
        ]
        # Anything else towards the containers (another network, another host aiming at a
        # container address directly) is dropped: only published ports come in. The drops
        # follow every network's accepts, so "outbound from A" can never accept "into B".
        drops.append(f'oifname "{br}" drop')
        # route_localnet=1 on the bridge would also let a container send to the host's
        # 127.0.0.1 services (CVE-2020-8558): nothing from a bridge may aim at 127.0.0.0/8.
        guard.append(f'iifname "{br}" ip daddr 127.0.0.0/8 drop')
    forward += drops
    body = [
        f"add table {FAMILY} {table}",
        f"delete table {FAMILY} {table}",
        f"table {FAMILY} {table} {{",
        *maps,
        _chain("publish", None, publish),
        _chain("guard", "type filter hook prerouting priority raw; policy accept;", guard),
        _chain(
            "prerouting",
            "type nat hook prerouting priority dstnat; policy accept;",
            ["fib daddr type local jump publish"],
        ),
        _chain(
            "output",
            "type nat hook output priority -100; policy accept;",
            ["fib daddr type local jump publish"],
        ),
        _chain("postrouting", "type nat hook postrouting priority srcnat; policy accept;", post),
        _chain("forward", "type filter hook forward priority filter; policy accept;", forward),
        "}",
    ]
    return "\n".join(body) + "\n"


def _map(name: str, items: list[str]) -> str:
    key = "ipv4_addr . inet_service" if name.endswith("_ip") else "inet_service"
    lines = [f"  map {name} {{", f"    type {key} : ipv4_addr . inet_service"]
    if items:  # nft refuses an empty element list
        lines.append("    elements = { " + ", ".join(items) + " }")
    lines.append("  }")
    return "\n".join(lines)


def _chain(name: str, hook: str | None, rules: list[str]) -> str:
    lines = [f"  chain {name} {{"]
    if hook:
        lines.append(f"    {hook}")
    lines += [f"    {rule}" for rule in rules]
    lines.append("  }")
    return "\n".join(lines)
