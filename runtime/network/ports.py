"""Published ports: Docker's -p syntax, exposed ports of an image, free host ports."""

from __future__ import annotations

import errno
import ipaddress
import re
import socket

from runtime.errors import Conflict, InvalidSpec
from runtime.spec import PortMapping

_PUBLISH_RE = re.compile(
    r"^(?:(?P<ip>\d{1,3}(?:\.\d{1,3}){3}|\[[0-9a-fA-F:]+\]):)?"
    r"(?:(?P<host>\d*(?:-\d+)?):)?"
    r"(?P<cont>\d+(?:-\d+)?)(?:/(?P<proto>[a-z]+))?$"
)


def _port_range(text: str, what: str) -> list[int]:
    low, _, high = text.partition("-")
    try:
        first, last = int(low), int(high or low)
    except ValueError:
        raise InvalidSpec(f"invalid {what} {text!r}") from None
    for port in (first, last):
        if not 1 <= port <= 65535:
            raise InvalidSpec(f"{what} {port} is out of range (1-65535)")
    if last < first:
        raise InvalidSpec(f"invalid {what} range {text!r}")
    return list(range(first, last + 1))


def parse_publish(text: str) -> list[PortMapping]:
    """Parse `-p [hostip:][hostport:]containerport[/proto]` with port ranges into mappings."""
    match = _PUBLISH_RE.match(text.strip())
    if not match:
        raise InvalidSpec(
            f"invalid port mapping {text!r} (use [hostip:]hostport:containerport[/tcp|udp])"
        )
    proto = match["proto"] or "tcp"
    if proto not in ("tcp", "udp"):
        raise InvalidSpec(f"invalid protocol {proto!r} in {text!r} (tcp or udp)")
    host_ip = (match["ip"] or "").strip("[]")
    if host_ip:
        try:
            ipaddress.IPv4Address(host_ip)
        except ValueError:
            raise InvalidSpec(f"invalid host IP {host_ip!r} in {text!r} (IPv4 only)") from None
    container_ports = _port_range(match["cont"], "container port")
    host_ports = (
        _port_range(match["host"], "host port") if match["host"] else [0] * len(container_ports)
    )
    if len(host_ports) != len(container_ports):
        if len(container_ports) == 1:
            # Docker: "-p 8000-8010:80" publishes port 80 on the first free port of the range.
            mapping = PortMapping(
                container_port=container_ports[0],
                host_port=host_ports[0],
                host_ip=host_ip,
                protocol=proto,
                host_port_end=host_ports[-1],
            )
            mapping.validate()
            return [mapping]
        raise InvalidSpec(f"host and container port ranges differ in length in {text!r}")
    mappings = []
    for host, cont in zip(host_ports, container_ports, strict=True):
        mapping = PortMapping(container_port=cont, host_port=host, host_ip=host_ip, protocol=proto)
        mapping.validate()
        mappings.append(mapping)
    return mappings


def parse_exposed(exposed) -> list[tuple[int, str]]:
    """Image ExposedPorts ({"80/tcp": {}} or ["80/tcp", "53/udp"]) as (port, protocol)."""
    result = []
    for item in exposed or ():
        port, _, proto = str(item).partition("/")
        proto = proto or "tcp"
        if proto not in ("tcp", "udp"):
            continue  # sctp and friends are not published
        result.extend((p, proto) for p in _port_range(port, "exposed port"))
    return result


def _sock_type(protocol: str) -> int:
    return socket.SOCK_STREAM if protocol == "tcp" else socket.SOCK_DGRAM


def check_bindable(host_ip: str, port: int, protocol: str) -> None:
    """Raise Conflict when a host socket already holds `host_ip:port/protocol`."""
    with socket.socket(socket.AF_INET, _sock_type(protocol)) as sock:
        if protocol == "tcp":
            # Ignores TIME_WAIT leftovers, yet still collides with a listener. (For UDP it
            # would let us share a port with a server that set it too: not wanted.)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host_ip or "0.0.0.0", port))
        except OSError as err:
            if err.errno == errno.EADDRINUSE:
                from runtime.network.foreign_ports import socket_owner  # only on a refusal

                owner = socket_owner(host_ip, port, protocol)
                raise Conflict(
                    f"host port {host_ip or '0.0.0.0'}:{port}/{protocol} is already in use by "
                    f"{owner}"
                ) from None
            if err.errno == errno.EADDRNOTAVAIL:
                raise InvalidSpec(f"host IP {host_ip} is not an address of this host") from None
            raise


def first_free_in_range(
    host_ip: str, protocol: str, first: int, last: int, published: set[int]
) -> int:
    """The first port of `first..last` that Berth has not published and no host socket holds."""
    for port in range(first, last + 1):
        if port in published:
            continue
        try:
            check_bindable(host_ip, port, protocol)
        except Conflict:
            continue
        return port
    raise Conflict(
        f"every host port of {host_ip or '0.0.0.0'}:{first}-{last}/{protocol} is already in use"
    )


def free_port(host_ip: str, protocol: str, taken: set[tuple[str, int]]) -> int:
    """A host port the kernel considers free (ephemeral range) that Berth has not published."""
    for _ in range(64):
        with socket.socket(socket.AF_INET, _sock_type(protocol)) as sock:
            sock.bind((host_ip or "0.0.0.0", 0))
            port = sock.getsockname()[1]
        if (protocol, port) not in taken:
            return port
    raise Conflict(f"no free host port for {protocol}")
