"""Network devices: bridges (pyroute2), veth pairs born inside the container's netns (rtnl)."""

from __future__ import annotations

import contextlib
import os
import socket
import threading
from collections.abc import Callable

from runtime import linux
from runtime.errors import KernelError
from runtime.network import rtnl

LOOPBACK_INDEX = 1  # lo is always index 1 in a network namespace


def _kernel_error(what: str, err) -> KernelError:
    return KernelError(f"{what}: {os.strerror(err.code) if err.code > 0 else err}")


def write_sysctl(path: str, value: str) -> None:
    """Write one /proc/sys value (e.g. net/ipv4/ip_forward)."""
    with open(f"/proc/sys/{path}", "w") as f:
        f.write(value)


def read_sysctl(path: str) -> str:
    """Read one /proc/sys value."""
    with open(f"/proc/sys/{path}") as f:
        return f.read().strip()


class Links:
    """Host-side link operations on one long-lived netlink socket of the host's namespace."""

    def __init__(self):
        self._ipr = None  # pyroute2 for the cold path (bridges); importing it costs 0.1 s
        self._rtnl: rtnl.Rtnl | None = None  # hand-built requests for the start path

    @property
    def ipr(self):
        """A pyroute2 IPRoute of the host's namespace, opened on first use."""
        if self._ipr is None:
            from pyroute2 import IPRoute

            self._ipr = IPRoute()
        return self._ipr

    def close(self) -> None:
        """Close the netlink socket."""
        if self._ipr is not None:
            self._ipr.close()
            self._ipr = None
        if self._rtnl is not None:
            self._rtnl.close()
            self._rtnl = None

    def index(self, ifname: str) -> int | None:
        """Interface index of `ifname`, None when it does not exist (an ioctl, no netlink)."""
        try:
            return socket.if_nametoindex(ifname)
        except OSError:
            return None

    def names_with_prefix(self, prefix: str) -> list[str]:
        """Names of host interfaces that start with `prefix`."""
        return [
            link.get_attr("IFLA_IFNAME")
            for link in self.ipr.get_links()
            if (link.get_attr("IFLA_IFNAME") or "").startswith(prefix)
        ]

    def ensure_bridge(self, name: str, gateway: str, prefixlen: int) -> int:
        """Create (or repair) bridge `name` with the gateway address, up; return its index."""
        from pyroute2.netlink.exceptions import NetlinkError

        index = self.index(name)
        try:
            if index is None:
                # A fixed MAC: otherwise the bridge takes its ports' lowest MAC, which changes
                # as containers come and go and leaves stale ARP entries in the others.
                mac = "02:42:" + ":".join(f"{b:02x}" for b in socket.inet_aton(gateway))
                self.ipr.link("add", ifname=name, kind="bridge", address=mac)
                index = self.index(name)
            have = {
                (a.get_attr("IFA_ADDRESS"), a["prefixlen"])
                for a in self.ipr.get_addr(index=index, family=2)
            }
            if (gateway, prefixlen) not in have:
                self.ipr.addr("add", index=index, address=gateway, prefixlen=prefixlen)
            self.ipr.link("set", index=index, state="up")
        except NetlinkError as err:
            raise _kernel_error(f"cannot set up bridge {name}", err) from err
        # Containers reach the world through the host; 127.0.0.1 port maps need route_localnet,
        # which is set on the bridge only (never on the host's outward interfaces: CVE-2020-8558).
        write_sysctl("net/ipv4/ip_forward", "1")
        write_sysctl(f"net/ipv4/conf/{name}/forwarding", "1")
        write_sysctl(f"net/ipv4/conf/{name}/route_localnet", "1")
        return index

    def delete(self, ifname: str) -> None:
        """Delete an interface if it exists."""
        try:
            self._rtnl_sock().run(rtnl.link_del_msg(ifname), what=f"deleting {ifname}")
        except KernelError as err:
            if self.index(ifname) is not None:  # "no such device" is what we wanted
                raise err

    def set_master(self, ifname: str, bridge_index: int) -> None:
        """Put an existing interface on a bridge (and up); a missing one is skipped."""
        index = self.index(ifname)
        if index is not None:
            self._rtnl_sock().run(rtnl.master_msg(index, bridge_index), what=f"attaching {ifname}")

    def set_hairpin(self, port: str) -> None:
        """Let the bridge send a frame back out of the port it came from.

        A container reaching its own published port: the DNATed frame returns through the same
        veth, which a bridge refuses unless hairpin mode is on. Netlink, not sysfs: /sys shows
        the links of the namespace that mounted it, which is not this one for an agent started
        with `nsenter --net` (another machine of the test fleet).
        """
        index = self.index(port)
        if index is None:
            raise KernelError(f"cannot set hairpin mode on {port}: no such device")
        self._rtnl_sock().run(rtnl.hairpin_msg(index), what=f"hairpin mode on {port}")

    def _rtnl_sock(self) -> rtnl.Rtnl:
        if self._rtnl is None:
            self._rtnl = rtnl.Rtnl()
        return self._rtnl

    def add_veth(
        self, host_name: str, bridge_index: int, netns_fd: int, peer_name: str, mac: str, ip: str
    ) -> None:
        """Create a veth pair: host end on the bridge and up, peer born inside the netns; and
        tell the bridge that `ip` is at `mac` now.

        The bridge's neighbour entry matters when an address comes back (a migrated or
        restarted container): packets sent to it while it was away left an incomplete entry
        whose queued packets wait for the next ARP probe, up to a second after the container
        is there again. Replacing it sends them at once."""
        sock = self._rtnl_sock()
        msg = rtnl.veth_msg(host_name, bridge_index, peer_name, netns_fd, mac)
        sock.run(msg, what=f"creating veth {host_name} (peer {peer_name})")
        with contextlib.suppress(KernelError):  # an optimisation: never fails a start
            sock.run(rtnl.neigh_msg(bridge_index, ip, mac), what=f"neighbour {ip}")


def in_netns(netns_fd: int, work: Callable[[], object]) -> object:
    """Run `work()` on a thread that has joined the namespace behind `netns_fd`.

    setns() moves only the calling thread, so a short-lived thread enters the namespace, opens
    its sockets there and dies; the caller's own thread never leaves the host's namespace.
    """
    result: dict = {}

    def body():
        try:
            linux.setns(netns_fd, linux.CLONE_NEWNET)
            result["value"] = work()
        except BaseException as err:  # handed to the caller's thread below
            result["error"] = err

    thread = threading.Thread(target=body, name="berth-netns")
    thread.start()
    thread.join()
    if "error" in result:
        raise result["error"]
    return result.get("value")


def open_netns(pid: int) -> int:
    """Open the network namespace of process `pid`; the caller closes the descriptor."""
    try:
        return os.open(f"/proc/{pid}/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        raise KernelError(f"process {pid} does not exist (its network namespace is gone)") from None


def netns_inode(pid: int) -> int | None:
    """Inode of the network namespace of `pid` (tells a live container from a reused pid)."""
    try:
        return os.stat(f"/proc/{pid}/ns/net").st_ino
    except OSError:
        return None


def loopback_up(pid: int) -> None:
    """Bring up `lo` in the network namespace of `pid` (every mode with its own netns)."""
    fd = open_netns(pid)
    try:
        in_netns(fd, lambda: _run_inside([rtnl.link_up_msg(LOOPBACK_INDEX)]))
    finally:
        os.close(fd)


def configure_inside(interfaces: list[dict], gateway: str | None) -> None:
    """Inside the netns: lo up, each interface's address and up, then the default route."""
    requests = [rtnl.link_up_msg(LOOPBACK_INDEX)]
    for iface in interfaces:
        try:
            index = socket.if_nametoindex(iface["ifname"])
        except OSError:
            raise KernelError(f"{iface['ifname']} did not appear in the container") from None
        requests += [rtnl.addr_msg(index, iface["ip"], iface["prefixlen"]), rtnl.link_up_msg(index)]
    if gateway:
        requests.append(rtnl.default_route_msg(gateway))
    _run_inside(requests)


def _run_inside(requests) -> None:
    with rtnl.Rtnl() as sock:
        sock.run(*requests, what="configuring the container's network")
