"""Address management: free subnets next to the host's routes, addresses inside a subnet."""

from __future__ import annotations

import ipaddress
import itertools
import socket
import struct
from collections.abc import Container

from runtime.errors import Conflict, InvalidSpec

IPv4Net = ipaddress.IPv4Network

# Docker's order: 172.17-31.0.0/16 first, then private /16s from 10/8 and 192.168/16 chunks.
DEFAULT_POOL = (
    [f"172.{n}.0.0/16" for n in range(17, 32)]
    + [f"10.{n}.0.0/16" for n in range(100, 256)]
    + [f"192.168.{n}.0/20" for n in range(0, 256, 16)]
)


def host_routes(path: str = "/proc/net/route") -> list[IPv4Net]:
    """IPv4 destinations the host routes today, without the default route."""
    nets = []
    with open(path) as f:
        next(f, None)
        for line in f:
            cols = line.split()
            if len(cols) < 8:
                continue
            dest = socket.inet_ntoa(struct.pack("<I", int(cols[1], 16)))
            mask = socket.inet_ntoa(struct.pack("<I", int(cols[7], 16)))
            net = IPv4Net(f"{dest}/{mask}", strict=False)
            if net.prefixlen:
                nets.append(net)
    return nets


def parse_subnet(subnet: str) -> IPv4Net:
    """Parse an IPv4 CIDR subnet that can hold at least two containers."""
    try:
        net = IPv4Net(subnet, strict=True)
    except ValueError as err:
        raise InvalidSpec(f"invalid subnet {subnet!r}: {err}") from None
    if net.prefixlen > 29:
        raise InvalidSpec(f"subnet {subnet} is too small (use /29 or larger)")
    return net


def parse_gateway(gateway: str | None, net: IPv4Net) -> str:
    """The gateway address: given (and inside the subnet) or the subnet's first host."""
    if gateway is None:
        return str(net.network_address + 1)
    try:
        addr = ipaddress.IPv4Address(gateway)
    except ValueError:
        raise InvalidSpec(f"invalid gateway {gateway!r}") from None
    if addr not in net or addr in (net.network_address, net.broadcast_address):
        raise InvalidSpec(f"gateway {gateway} is not a host address inside subnet {net}")
    return str(addr)


def check_free(net: IPv4Net, taken: dict[str, IPv4Net], routes: list[IPv4Net]) -> None:
    """Refuse a subnet that overlaps another network's or a route of the host."""
    for name, other in taken.items():
        if net.overlaps(other):
            raise Conflict(f"subnet {net} overlaps network {name!r} ({other})")
    for route in routes:
        if net.overlaps(route):
            raise Conflict(f"subnet {net} overlaps the host's route to {route}")


def pick_subnet(taken: dict[str, IPv4Net], routes: list[IPv4Net], pool=DEFAULT_POOL) -> IPv4Net:
    """The first subnet of `pool` that clashes with no network and no host route."""
    for candidate in pool:
        net = IPv4Net(candidate)
        if not any(net.overlaps(o) for o in taken.values()) and not any(
            net.overlaps(r) for r in routes
        ):
            return net
    raise Conflict("no free subnet left in the address pool; pass --subnet")


def allocate(
    net: IPv4Net,
    gateway: str,
    used: Container[str],
    wanted: str | None = None,
    after: str | None = None,
) -> str:
    """An address of `net` that is not the gateway and not in `used` (or `wanted`, checked).

    The search starts after `after` (the last address handed out) and wraps around, so a
    just-released address is not reused at once: the dying namespace of its previous owner
    can keep a veth with that address (and MAC) on the bridge for some 30 ms.
    """
    if wanted is not None:
        addr = ipaddress.IPv4Address(wanted)
        if addr not in net or addr in (net.network_address, net.broadcast_address):
            raise InvalidSpec(f"address {wanted} is not a host address of subnet {net}")
        if wanted == gateway or wanted in used:
            raise Conflict(f"address {wanted} is already in use on subnet {net}")
        return wanted
    # The addresses in use are compared as the strings they were handed out as, and the
    # candidates are made lazily: the first one after `after` is usually free, so a pick costs
    # the same with 1,000 members as with 10 (parsing every member's address did not, nor did
    # making the tuple of a /16's 65,534 candidates; issue 19).
    first, last = int(net.network_address) + 1, int(net.broadcast_address)
    start = first
    if after is not None and first <= int(ipaddress.IPv4Address(after)) < last - 1:
        start = int(ipaddress.IPv4Address(after)) + 1
    for value in itertools.chain(range(start, last), range(first, start)):
        address = str(ipaddress.IPv4Address(value))
        if address != gateway and address not in used:
            return address
    raise Conflict(f"no free address left in subnet {net}")


def mac_for(ip: str) -> str:
    """A locally administered MAC derived from the IPv4 address, as Docker does (02:42:...)."""
    return "02:42:" + ":".join(f"{b:02x}" for b in ipaddress.IPv4Address(ip).packed)
