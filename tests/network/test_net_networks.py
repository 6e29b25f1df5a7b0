"""Network objects: default network, create/ls/inspect/rm (API and CLI), refusals of bad input."""

import argparse
import json

import pytest

from runtime.errors import Conflict, InvalidSpec, NotFound
from runtime.network import ipam
from runtime.network.netlink import Links, read_sysctl
from runtime.spec import NetworkSpec

from .conftest import free_subnet, leftovers

pytestmark = pytest.mark.root


def _bridge_addrs(name):
    links = Links()
    try:
        index = links.index(name)
        if index is None:
            return None
        return {
            (a.get_attr("IFA_ADDRESS"), a["prefixlen"])
            for a in links.ipr.get_addr(index=index, family=2)
        }
    finally:
        links.close()


def test_default_network(manager, prefix):
    net = manager.ensure_default()
    assert net["name"] == "bridge" and net["bridge"] == f"{prefix}0" and net["default"]
    assert net["subnet"] == manager.config.extra["default_subnet"]
    assert _bridge_addrs(f"{prefix}0") == {(net["gateway"], 24)}
    assert read_sysctl("net/ipv4/ip_forward") == "1"
    assert read_sysctl(f"net/ipv4/conf/{prefix}0/route_localnet") == "1"
    assert manager.ensure_default()["id"] == net["id"]  # idempotent
    with pytest.raises(Conflict, match="pre-defined"):
        manager.remove("bridge")


def test_default_subnet_avoids_host_routes(manager):
    manager.config.extra.pop("default_subnet")
    subnet = free_subnet()
    # Pool: first a subnet the host routes (clash), then a free one.
    busy = str(ipam.host_routes()[0])
    manager.config.extra["subnet_pool"] = [busy, subnet]
    assert manager.ensure_default()["subnet"] == subnet


def test_create_list_inspect_remove(manager, prefix):
    subnet = free_subnet()
    net = manager.create("appnet", subnet=subnet)
    assert net["bridge"].startswith(prefix) and len(net["bridge"]) <= 15
    assert [n["name"] for n in manager.list()] == ["appnet"]
    assert manager.inspect("appnet")["id"] == net["id"]
    assert manager.inspect(net["id"][:12])["name"] == "appnet"
    manager.remove("appnet")
    assert manager.list() == []
    assert _bridge_addrs(net["bridge"]) is None
    with pytest.raises(NotFound):
        manager.inspect("appnet")


def test_bad_networks_are_refused_and_leave_nothing(manager, prefix):
    subnet = free_subnet()
    manager.create("one", subnet=subnet)
    with pytest.raises(Conflict, match="already exists"):
        manager.create("one", subnet=free_subnet())
    with pytest.raises(Conflict, match="overlaps network 'one'"):
        manager.create("two", subnet=subnet.replace(".0/24", ".128/25"))
    with pytest.raises(InvalidSpec, match="not a host address"):
        manager.create("two", subnet=free_subnet(), gateway="10.255.255.1")
    with pytest.raises(InvalidSpec, match="invalid subnet"):
        manager.create("two", subnet="10.300.0.0/16")
    with pytest.raises(InvalidSpec, match="reserved"):
        manager.create("host")
    with pytest.raises(InvalidSpec, match="invalid network name"):
        manager.create("bad name!")
    with pytest.raises(NotFound):
        manager.remove("nope")
    assert [n["name"] for n in manager.list()] == ["one"]
    assert sorted(leftovers(prefix)) == sorted(
        [manager.inspect("one")["bridge"], f"nft table ip {prefix}"]
    )


def test_remove_refused_while_in_use(manager, procs, files):
    manager.create("busy", subnet=free_subnet())
    proc = procs.sleeper()
    manager.attach(
        "c" * 64, "user", proc.pid, NetworkSpec(networks=["busy"]), "user", None, files("user")
    )
    with pytest.raises(Conflict, match="in use by container"):
        manager.remove("busy")
    manager.detach("c" * 64)
    manager.remove("busy")


def test_remove_refused_while_a_stopped_container_names_it(manager):
    net = manager.create("kept", subnet=free_subnet())
    # Runtime state dicts as runtime.api.Runtime.list() gives them: nothing is attached.
    containers = [
        {"id": "1" * 64, "name": "by-name", "spec": {"network": {"networks": ["kept"]}}},
        {"id": "2" * 64, "name": "by-id", "spec": {"network": {"networks": [net["id"][:12]]}}},
        {"id": "3" * 64, "name": "other", "spec": {"network": {"networks": ["elsewhere"]}}},
        {"id": "4" * 64, "name": "default", "spec": {"network": {}}},
    ]
    users = manager.users("kept", containers)
    assert users == ["by-name", "by-id"]
    with pytest.raises(Conflict, match=r"in use by container\(s\): by-id, by-name"):
        manager.remove("kept", users=users)
    assert manager.inspect("kept")["id"] == net["id"]  # nothing half-done
    manager.remove("kept", users=manager.users("kept", containers[2:]))
    with pytest.raises(NotFound):
        manager.inspect("kept")


def _cli(manager, *argv):
    from runtime.cli import networks

    parser = argparse.ArgumentParser(prog="berth")
    networks.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(list(argv))
    args.config = manager.config
    return args.func(args)


def test_cli_verbs(manager, capsys):
    subnet = free_subnet()
    assert _cli(manager, "network", "create", "--subnet", subnet, "clinet") == 0
    net_id = capsys.readouterr().out.strip()
    assert len(net_id) == 64
    assert _cli(manager, "network", "ls") == 0
    out = capsys.readouterr().out
    assert "clinet" in out and subnet in out and net_id[:12] in out
    assert _cli(manager, "network", "inspect", "clinet") == 0
    assert json.loads(capsys.readouterr().out)[0]["subnet"] == subnet
    assert _cli(manager, "network", "inspect", "ghost") == 1
    assert "not found" in capsys.readouterr().err
    assert _cli(manager, "network", "rm", "clinet") == 0
    assert capsys.readouterr().out.strip() == "clinet"
    assert _cli(manager, "network", "rm", "clinet") == 1
