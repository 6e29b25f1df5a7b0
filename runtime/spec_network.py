"""The container spec's network part: mode, networks, published ports, names and DNS."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Any

from runtime.errors import InvalidSpec
from runtime.spec_fields import MAC_RE, NAME_RE, check_keys, str_list


@dataclass
class PortMapping:
    """Publish `container_port/protocol` on `host_ip:host_port` (0 means: pick a free port).

    With `host_port_end`, the first free port of `host_port..host_port_end` is used.
    """

    container_port: int
    host_port: int = 0
    host_ip: str = ""
    protocol: str = "tcp"
    host_port_end: int = 0  # 0: a single host port, not a range

    @classmethod
    def from_dict(cls, data: Any) -> PortMapping:
        data = check_keys(cls, data, "port mapping")
        port = cls(
            container_port=data.get("container_port"),
            host_port=data.get("host_port", 0),
            host_ip=data.get("host_ip", "") or "",
            protocol=data.get("protocol", "tcp"),
            host_port_end=data.get("host_port_end", 0),
        )
        port.validate()
        return port

    def validate(self) -> None:
        for name, value, low in (
            ("container port", self.container_port, 1),
            ("host port", self.host_port, 0),
            ("host port range end", self.host_port_end, 0),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= 65535:
                raise InvalidSpec(f"{name} must be a number from {low} to 65535, got {value!r}")
        if self.host_port_end and not 0 < self.host_port <= self.host_port_end:
            raise InvalidSpec(
                f"invalid host port range {self.host_port}-{self.host_port_end}: "
                "it needs a first port no greater than its last"
            )
        if self.protocol not in ("tcp", "udp"):
            raise InvalidSpec(f"protocol must be tcp or udp, got {self.protocol!r}")
        if self.host_ip:
            try:
                ipaddress.ip_address(self.host_ip)
            except ValueError:
                raise InvalidSpec(f"invalid host IP {self.host_ip!r}") from None


@dataclass
class NetworkSpec:
    """How the container is wired: mode, networks to join, published ports, names and DNS."""

    mode: str = "bridge"  # bridge | none | host | container:<id or name>
    networks: list[str] = field(default_factory=list)  # empty with bridge mode: the default network
    aliases: list[str] = field(default_factory=list)
    links: list[str] = field(default_factory=list)  # "name:alias" or "name"
    ports: list[PortMapping] = field(default_factory=list)
    publish_all: bool = False
    mac_address: str | None = None
    ip_address: str | None = None
    dns: list[str] = field(default_factory=list)
    dns_search: list[str] = field(default_factory=list)
    extra_hosts: list[str] = field(default_factory=list)  # "host:ip"

    @classmethod
    def from_dict(cls, data: Any) -> NetworkSpec:
        data = check_keys(cls, data or {}, "network")
        net = cls(
            mode=data.get("mode", "bridge"),
            networks=str_list(data.get("networks"), "networks"),
            aliases=str_list(data.get("aliases"), "aliases"),
            links=str_list(data.get("links"), "links"),
            ports=[PortMapping.from_dict(p) for p in (data.get("ports") or [])],
            publish_all=bool(data.get("publish_all", False)),
            mac_address=data.get("mac_address"),
            ip_address=data.get("ip_address"),
            dns=str_list(data.get("dns"), "dns"),
            dns_search=str_list(data.get("dns_search"), "dns_search"),
            extra_hosts=str_list(data.get("extra_hosts"), "extra_hosts"),
        )
        net.validate()
        return net

    def validate(self) -> None:
        if not (self.mode in ("bridge", "none", "host") or self.mode.startswith("container:")):
            raise InvalidSpec(
                f"network mode must be bridge, none, host or container:<name>, got {self.mode!r}"
            )
        if self.mode != "bridge" and (
            self.networks or self.ports or self.publish_all or self.links
        ):
            raise InvalidSpec(
                f"networks, published ports and links need bridge mode, not {self.mode!r}"
            )
        if self.mac_address is not None and not MAC_RE.match(self.mac_address):
            raise InvalidSpec(f"invalid MAC address {self.mac_address!r}")
        if self.mac_address is not None and int(self.mac_address[:2], 16) & 1:
            raise InvalidSpec(f"MAC address {self.mac_address!r} is a multicast address")
        for server in self.dns:
            try:
                ipaddress.ip_address(server)
            except ValueError:
                raise InvalidSpec(f"invalid DNS server {server!r}") from None
        if self.ip_address is not None:
            try:
                ipaddress.IPv4Address(self.ip_address)
            except ValueError:
                raise InvalidSpec(f"invalid IP address {self.ip_address!r}") from None
        for name in self.networks + self.aliases:
            if not NAME_RE.match(name):
                raise InvalidSpec(f"invalid network or alias name {name!r}")
        for link in self.links:
            target, _, alias = link.partition(":")
            if not NAME_RE.match(target) or (alias and not NAME_RE.match(alias)):
                raise InvalidSpec(f"invalid link {link!r} (use name or name:alias)")
        for entry in self.extra_hosts:
            host, _, addr = entry.partition(":")
            try:
                ipaddress.ip_address(addr)
            except ValueError:
                raise InvalidSpec(f"invalid extra host {entry!r} (use host:ip)") from None
            if not host:
                raise InvalidSpec(f"invalid extra host {entry!r} (use host:ip)")
