"""Issue 22: the runtime refuses a host port that any rule or listener on the host already uses,
whoever made it, and names what holds it; the refused create leaves nothing behind.

The holders are real: another Berth installation's table (its own prefix, the same rule set
Berth renders), an iptables-nft DNAT rule like Docker's, a plain nftables DNAT rule, and a
listening socket of this test process. Each is removed afterwards, even on failure.
"""

import contextlib
import os
import secrets
import socket
import subprocess

import pytest

from runtime.errors import Conflict
from runtime.network import foreign_ports, nft, ruleset
from runtime.spec import ContainerSpec, NetworkSpec, PortMapping
from tests.runtime.net_runtime import free_port, net_runtime, nft_ports


def _name(prefix: str) -> str:
    return prefix + secrets.token_hex(3)


@pytest.fixture
def other_berth():
    """Another Berth installation's table (prefix tpc...) publishing one TCP port."""
    table, port = _name("tpc"), free_port()
    ports = [{"host_ip": "", "host_port": port, "container_port": 80, "protocol": "tcp"}]
    nft.run(ruleset.render(table, [], [dict(p, ip="10.217.250.2") for p in ports]))
    try:
        yield table, port
    finally:
        nft.delete_table("ip", table)


@pytest.fixture
def plain_dnat():
    """An admin's nftables table with a DNAT rule for a UDP port range and a TCP port."""
    table, port = _name("tpd"), free_port()
    nft.run(
        f"table ip {table} {{\n"
        "  chain pre {\n"
        "    type nat hook prerouting priority dstnat; policy accept;\n"
        f"    tcp dport {port} dnat to 10.217.251.2:80\n"
        f"    udp dport {{ {port}-{port + 2} }} dnat to 10.217.251.2:53\n"
        "  }\n"
        "}\n"
    )
    try:
        yield table, port
    finally:
        nft.delete_table("ip", table)


@pytest.fixture
def iptables_dnat():
    """A DNAT rule made by iptables-nft (as Docker and Podman make them) in a chain of our own."""
    chain, port = "TPC-" + secrets.token_hex(3).upper(), free_port()
    nat_existed = nft.table_exists("ip", "nat")

    def ipt(*args, check=True):
        return subprocess.run(
            ["iptables-nft", "-t", "nat", *args], capture_output=True, check=check
        )

    ipt("-N", chain)
    try:
        ipt("-A", chain, "-p", "tcp", "--dport", str(port), "-j", "DNAT",
            "--to-destination", "10.217.252.2:80")  # fmt: skip
        yield chain, port
    finally:
        ipt("-F", chain, check=False)
        ipt("-X", chain, check=False)
        if not nat_existed:
            with contextlib.suppress(Exception):
                nft.delete_table("ip", "nat")


def test_another_installations_table_is_named(other_berth):
    table, port = other_berth
    holders = foreign_ports.held("tpcnotme")
    with pytest.raises(Conflict) as err:
        foreign_ports.refuse_if_held(holders, "tcp", "", port)
    assert str(err.value) == (
        f"host port 0.0.0.0:{port}/tcp is already forwarded by a port map in table ip {table} "
        "(map tcp_any)"
    )
    # Its own table is this installation's state, not a foreign holder.
    assert foreign_ports.conflict(foreign_ports.held(table), "tcp", "", port) is None
    assert foreign_ports.conflict(holders, "udp", "", port) is None


def test_a_plain_nftables_dnat_rule_is_named(plain_dnat):
    table, port = plain_dnat
    holders = foreign_ports.held("tpcnotme")
    for protocol, probe in (("tcp", port), ("udp", port + 2)):
        holder = foreign_ports.conflict(holders, protocol, "", probe)
        assert holder is not None and holder.owner == (
            f"an nftables rule in table ip {table} (chain pre)"
        )
    assert foreign_ports.conflict(holders, "udp", "", port + 3) is None


def test_an_iptables_nft_dnat_rule_is_named(iptables_dnat):
    chain, port = iptables_dnat
    holder = foreign_ports.conflict(foreign_ports.held("tpcnotme"), "tcp", "127.0.0.1", port)
    assert (
        holder is not None and holder.owner == f"an nftables rule in table ip nat (chain {chain})"
    )


def test_a_listening_socket_is_named_with_its_program():
    from runtime.network.ports import check_bindable

    with socket.socket() as sock:
        sock.bind(("0.0.0.0", 0))
        sock.listen()
        port = sock.getsockname()[1]
        with pytest.raises(Conflict) as err:
            check_bindable("", port, "tcp")
    assert f"host port 0.0.0.0:{port}/tcp is already in use by " in str(err.value)
    assert f"(pid {os.getpid()})" in str(err.value)


def _spec(name, port, protocol="tcp", end=0):
    mapping = PortMapping(container_port=80, host_port=port, protocol=protocol, host_port_end=end)
    return ContainerSpec(
        image="busybox", name=name, command=["sleep", "60"], network=NetworkSpec(ports=[mapping])
    )


def test_run_refuses_a_port_another_installation_forwards(other_berth, plain_dnat):
    table, port = other_berth
    other_table, other_port = plain_dnat
    with net_runtime() as rt:
        with pytest.raises(Conflict, match=f"forwarded by a port map in table ip {table} "):
            rt.run(_spec("tpc-a", port))
        with pytest.raises(
            Conflict, match=f"forwarded by an nftables rule in table ip {other_table} "
        ):
            rt.run(_spec("tpc-b", other_port))
        # Nothing half-made: no container, no published port in its own table, no veth.
        assert rt.list() == []
        assert f"{port}" not in nft_ports(rt.config.prefix)
        links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
        assert f": {rt.config.prefix}" not in links.replace(f": {rt.config.prefix}0", "")
        # A range skips the forwarded port: port..port+1 lands on port+1 when that is free.
        if foreign_ports.conflict(foreign_ports.held(rt.config.prefix), "tcp", "", port + 1):
            pytest.skip("the next port is forwarded by someone else right now")
        state = rt.run(_spec("tpc-c", port, end=port + 1))
        try:
            assert state["network"]["ports"][0]["host_port"] == port + 1
        finally:
            rt.delete(state["id"], force=True)
