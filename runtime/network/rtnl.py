"""A minimal rtnetlink client for the start path: a few fixed requests, sent as one batch.

pyroute2 (used for bridges, off the hot path) costs about 0.5 ms per request and 0.8 ms per
socket here; these hand-built messages cost what the kernel costs. Only the requests a
container start needs are here: veth with its peer born in another netns, link up, IPv4
address, default route, hairpin mode on a bridge port, the bridge's neighbour entry for the
container, delete by name.
"""

from __future__ import annotations

import errno
import os
import socket
import struct
from typing import NamedTuple

from runtime.errors import Conflict, KernelError

NETLINK_ROUTE = 0
RTM_NEWLINK, RTM_DELLINK, RTM_SETLINK, RTM_NEWADDR, RTM_NEWROUTE = 16, 17, 19, 20, 24
RTM_NEWNEIGH = 28
NLMSG_ERROR = 2
NLM_F_REQUEST, NLM_F_ACK, NLM_F_REPLACE, NLM_F_EXCL, NLM_F_CREATE = 0x1, 0x4, 0x100, 0x200, 0x400
NLA_F_NESTED = 0x8000
IFF_UP = 0x1
IFLA_ADDRESS, IFLA_IFNAME, IFLA_MASTER, IFLA_LINKINFO, IFLA_NET_NS_FD = 1, 3, 10, 18, 28
IFLA_INFO_KIND, IFLA_INFO_DATA, VETH_INFO_PEER = 1, 2, 1
IFLA_PROTINFO, IFLA_BRPORT_MODE = 12, 4
IFA_ADDRESS, IFA_LOCAL = 1, 2
RTA_GATEWAY = 5
NDA_DST, NDA_LLADDR, NUD_REACHABLE = 1, 2, 0x02
RT_TABLE_MAIN, RTPROT_STATIC, RT_SCOPE_UNIVERSE, RTN_UNICAST = 254, 4, 0, 1

_NLMSGHDR = struct.Struct("=IHHII")
_IFINFOMSG = struct.Struct("=BBHiII")
_IFADDRMSG = struct.Struct("=BBBBI")
_RTMSG = struct.Struct("=BBBBBBBBI")
_NDMSG = struct.Struct("=BBHiHBB")


class Request(NamedTuple):
    """One netlink request: message type, extra flags, body, and what it does (for errors)."""

    kind: int
    flags: int
    body: bytes
    label: str


def attr(kind: int, payload: bytes) -> bytes:
    """One netlink attribute, padded to 4 bytes."""
    length = 4 + len(payload)
    return struct.pack("=HH", length, kind) + payload + b"\0" * (-length % 4)


def _name(name: str) -> bytes:
    return name.encode() + b"\0"


def _mac(mac: str) -> bytes:
    return bytes(int(part, 16) for part in mac.split(":"))


def _ifinfo(index: int = 0, up: bool = False) -> bytes:
    return _IFINFOMSG.pack(socket.AF_UNSPEC, 0, 0, index, IFF_UP if up else 0, IFF_UP if up else 0)


def veth_msg(
    name: str, master: int, peer: str, peer_netns_fd: int, peer_mac: str
) -> tuple[int, int, bytes]:
    """RTM_NEWLINK: veth `name` (up, on bridge `master`), peer created inside the netns."""
    peer_body = (
        _ifinfo()
        + attr(IFLA_IFNAME, _name(peer))
        + attr(IFLA_NET_NS_FD, struct.pack("=I", peer_netns_fd))
    )
    peer_body += attr(IFLA_ADDRESS, _mac(peer_mac))
    info = attr(IFLA_INFO_KIND, b"veth") + attr(
        IFLA_INFO_DATA | NLA_F_NESTED, attr(VETH_INFO_PEER, peer_body)
    )
    body = (
        _ifinfo(up=True)
        + attr(IFLA_IFNAME, _name(name))
        + attr(IFLA_MASTER, struct.pack("=I", master))
    )
    body += attr(IFLA_LINKINFO | NLA_F_NESTED, info)
    return Request(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, body, f"veth {name} with peer {peer}")


def neigh_msg(index: int, ip: str, mac: str) -> Request:
    """RTM_NEWNEIGH, created or replaced: `ip` is at `mac` on link `index`, reachable."""
    body = _NDMSG.pack(socket.AF_INET, 0, 0, index, NUD_REACHABLE, 0, 0)
    body += attr(NDA_DST, socket.inet_aton(ip)) + attr(NDA_LLADDR, _mac(mac))
    return Request(RTM_NEWNEIGH, NLM_F_CREATE | NLM_F_REPLACE, body, f"neighbour {ip} at {mac}")


def link_up_msg(index: int) -> Request:
    """RTM_NEWLINK on an existing link: set IFF_UP."""
    return Request(RTM_NEWLINK, 0, _ifinfo(index, up=True), f"link {index} up")


def master_msg(index: int, master: int) -> Request:
    """RTM_NEWLINK on an existing link: enslave it to bridge `master` and set it up."""
    body = _ifinfo(index, up=True) + attr(IFLA_MASTER, struct.pack("=I", master))
    return Request(RTM_NEWLINK, 0, body, f"link {index} on bridge {master}")


def hairpin_msg(index: int) -> Request:
    """RTM_SETLINK (AF_BRIDGE) on bridge port `index`: hairpin mode on, as `bridge link set`."""
    body = _IFINFOMSG.pack(socket.AF_BRIDGE, 0, 0, index, 0, 0)
    body += attr(IFLA_PROTINFO | NLA_F_NESTED, attr(IFLA_BRPORT_MODE, b"\x01"))
    return Request(RTM_SETLINK, 0, body, f"hairpin mode on link {index}")


def link_del_msg(name: str) -> Request:
    """RTM_DELLINK by name."""
    return Request(RTM_DELLINK, 0, _ifinfo() + attr(IFLA_IFNAME, _name(name)), f"delete {name}")


def addr_msg(index: int, ip: str, prefixlen: int) -> Request:
    """RTM_NEWADDR: IPv4 `ip/prefixlen` on link `index`."""
    packed = socket.inet_aton(ip)
    body = _IFADDRMSG.pack(socket.AF_INET, prefixlen, 0, RT_SCOPE_UNIVERSE, index)
    body += attr(IFA_LOCAL, packed) + attr(IFA_ADDRESS, packed)
    return Request(RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL, body, f"address {ip}/{prefixlen}")


def default_route_msg(gateway: str) -> Request:
    """RTM_NEWROUTE: default via `gateway` in the main table."""
    body = _RTMSG.pack(
        socket.AF_INET, 0, 0, 0, RT_TABLE_MAIN, RTPROT_STATIC, RT_SCOPE_UNIVERSE, RTN_UNICAST, 0
    )
    body += attr(RTA_GATEWAY, socket.inet_aton(gateway))
    return Request(RTM_NEWROUTE, NLM_F_CREATE | NLM_F_EXCL, body, f"default route via {gateway}")


class Rtnl:
    """A NETLINK_ROUTE socket of the calling thread's network namespace."""

    def __init__(self):
        self.sock = socket.socket(
            socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, NETLINK_ROUTE
        )
        self.sock.bind((0, 0))
        self.seq = 0

    def close(self) -> None:
        """Close the socket."""
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def run(self, *requests: Request, what: str = "netlink request") -> None:
        """Send requests in one datagram (the kernel runs them in order); raise on the first error."""
        buf = bytearray()
        first = self.seq + 1
        for kind, flags, body, _ in requests:
            self.seq += 1
            buf += _NLMSGHDR.pack(
                _NLMSGHDR.size + len(body), kind, flags | NLM_F_REQUEST | NLM_F_ACK, self.seq, 0
            )
            buf += body
        self.sock.send(bytes(buf))
        pending = set(range(first, self.seq + 1))
        failure = None
        while pending:
            data = self.sock.recv(65536)
            offset = 0
            while offset + _NLMSGHDR.size <= len(data):
                length, kind, _, seq, _ = _NLMSGHDR.unpack_from(data, offset)
                if kind == NLMSG_ERROR and seq in pending:
                    pending.discard(seq)
                    code = -struct.unpack_from("=i", data, offset + _NLMSGHDR.size)[0]
                    if code and failure is None:
                        failure = (code, seq - first)
                offset += max(length + (-length % 4), _NLMSGHDR.size)
        if failure:
            code, index = failure
            label = requests[index].label
            if code == errno.EEXIST:
                raise Conflict(f"{what}: {label} already exists")
            raise KernelError(f"{what}: {label}: {os.strerror(code)}")
