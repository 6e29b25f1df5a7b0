"""Networking through real containers (runtime.api.Runtime): ports, names, stop and delete."""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import socket
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

from runtime.config import RuntimeConfig
from runtime.errors import Conflict, NotFound
from runtime.spec import ContainerSpec

from .conftest import free_subnet, random_prefix, wait_gone

pytestmark = pytest.mark.root


@pytest.fixture(scope="module")
def rt():
    """A Runtime with its own prefix, roots and default subnet; everything removed afterwards."""
    api = pytest.importorskip("runtime.api")
    from runtime.images import ImageStore
    from runtime.images.busybox import build_image

    base = Path(tempfile.mkdtemp(prefix="berth-nettest-"))
    prefix = random_prefix()
    config = RuntimeConfig(
        root=base / "root",
        run_root=base / "run",
        prefix=prefix,
        extra={"default_subnet": free_subnet()},
    )
    runtime = api.Runtime(config)
    try:
        build_image(ImageStore(config))
        yield runtime
    finally:
        for c in runtime.list():
            try:
                runtime.delete(c["id"], force=True)
            except Exception as err:  # keep cleaning; the leak check below reports
                print(f"cleanup of {c['id']}: {err}")
        runtime.networks.purge()
        runtime.networks.close()
        for hierarchy in config.cgroup_root.iterdir():  # the prefix's (empty) parent groups
            with contextlib.suppress(OSError):
                os.rmdir(hierarchy / config.cgroup_parent)
        left = wait_gone(prefix) + [
            str(h / config.cgroup_parent)
            for h in config.cgroup_root.iterdir()
            if (h / config.cgroup_parent).is_dir()
        ]
        shutil.rmtree(base, ignore_errors=True)
        assert not left, f"left behind: {left}"


def _spec(**kw) -> ContainerSpec:
    data = {"image": "busybox", "command": ["sleep", "1000"]}
    data.update(kw)
    return ContainerSpec.from_dict(data)


def _get(url: str, tries: int = 50) -> str:
    # The container's httpd may still be starting: retry refused connections briefly.
    for _ in range(tries):
        try:
            with urllib.request.urlopen(url, timeout=3) as resp:
                return resp.read().decode()
        except ConnectionRefusedError:
            time.sleep(0.05)
        except urllib.error.URLError as err:
            if not isinstance(err.reason, ConnectionRefusedError):
                raise
            time.sleep(0.05)
    raise AssertionError(f"{url} never answered")


def _refused(url: str) -> bool:
    try:
        urllib.request.urlopen(url, timeout=2)
    except OSError:
        return True
    return False


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_container_port_vanishes_on_stop_and_returns_on_start(rt):
    port = _free_port()
    spec = _spec(
        name="netweb",
        command=["httpd", "-f", "-p", "80", "-h", "/etc"],
        network={"ports": [{"container_port": 80, "host_port": port}]},
    )
    state = rt.run(spec)
    assert state["network"]["ports"][0]["host_port"] == port
    hosts = _get(f"http://127.0.0.1:{port}/hosts")
    assert f"{state['network']['networks']['bridge']['ip']}\t" in hosts
    assert "nameserver" in _get(f"http://127.0.0.1:{port}/resolv.conf")
    rt.stop(state["id"], timeout=1)
    assert _refused(f"http://127.0.0.1:{port}/hosts")
    assert rt.networks.endpoint(state["id"]) is None
    rt.start(state["id"])
    assert "localhost" in _get(f"http://127.0.0.1:{port}/hosts")
    rt.delete(state["id"], force=True)
    assert rt.networks.inspect("bridge")["containers"] == {}


def test_containers_reach_each_other_by_name_and_alias(rt):
    rt.networks.create("nettestapp", subnet=free_subnet())
    try:
        db = rt.run(
            _spec(
                name="netdb",
                command=["httpd", "-f", "-p", "80", "-h", "/etc"],
                network={"networks": ["nettestapp"], "aliases": ["database"]},
            )
        )
        client = rt.run(
            _spec(
                name="netclient",
                command=[
                    "sh",
                    "-c",
                    "sleep 0.3; wget -q -O- http://netdb/hostname && wget -q -O- http://database/hostname",
                ],
                network={"networks": ["nettestapp"]},
            )
        )
        assert rt.wait(client["id"]) == 0
        output = b"".join(chunk for _, _, chunk in rt.logs(client["id"])).decode()
        hostname = db["id"][:12]
        assert output.split() == [hostname, hostname], output
        with pytest.raises(Exception, match="in use"):
            rt.networks.remove("nettestapp")
    finally:
        for c in rt.list():
            rt.delete(c["id"], force=True)
        rt.networks.remove("nettestapp")


def test_restore_brings_port_maps_back_for_running_containers(rt):
    from runtime.network import nft

    port = _free_port()
    spec = _spec(
        name="netrestore",
        command=["httpd", "-f", "-p", "80", "-h", "/etc"],
        network={"ports": [{"container_port": 80, "host_port": port}]},
    )
    state = rt.run(spec)
    try:
        assert "localhost" in _get(f"http://127.0.0.1:{port}/hosts")
        nft.delete_table("ip", rt.config.prefix)  # an agent restart after a firewall reload
        assert _refused(f"http://127.0.0.1:{port}/hosts")
        assert rt.networks.restore() == []
        assert "localhost" in _get(f"http://127.0.0.1:{port}/hosts")
    finally:
        rt.delete(state["id"], force=True)


def _free_run(length: int) -> int:
    """The first port of a run of `length` TCP ports that no host socket holds right now."""
    for first in range(42000, 60000, 97):
        held = []
        try:
            for port in range(first, first + length):
                sock = socket.socket()
                held.append(sock)
                sock.bind(("0.0.0.0", port))
            return first
        except OSError:
            continue
        finally:
            for sock in held:
                sock.close()
    pytest.skip("no run of free ports found")


def test_host_port_range_picks_first_free_port_and_conflicts_when_full(rt):
    first = _free_run(3)
    last = first + 2
    blocker = socket.socket()  # another program owns the first port of the range
    blocker.bind(("0.0.0.0", first))
    blocker.listen()
    web_spec = {"command": ["httpd", "-f", "-p", "80", "-h", "/etc"]}
    try:
        one = rt.run(
            _spec(name="rangeone", network={"ports": _ports(f"{first}-{last}:80")}, **web_spec)
        )
        two = rt.run(
            _spec(name="rangetwo", network={"ports": _ports(f"{first}-{last}:80")}, **web_spec)
        )
        # Port `first` is the blocker's, so Berth uses the next two, in order.
        assert one["network"]["ports"][0]["host_port"] == first + 1
        assert two["network"]["ports"][0]["host_port"] == last
        for state, port in ((one, first + 1), (two, last)):
            assert state["hostname"] in _get(f"http://127.0.0.1:{port}/hostname")
        with pytest.raises(Conflict, match=f"every host port of 0.0.0.0:{first}-{last}/tcp"):
            rt.run(_spec(name="rangefull", network={"ports": _ports(f"{first}-{last}:80")}))
        assert {c["name"] for c in rt.list()} >= {"rangeone", "rangetwo"}
        assert len(rt.networks.inspect("bridge")["containers"]) == 2  # nothing half-attached
        # Once the first user stops, its port is free again for the next container.
        rt.stop(one["id"], timeout=1)
        three = rt.run(
            _spec(name="rangethree", network={"ports": _ports(f"{first}-{last}:80")}, **web_spec)
        )
        assert three["network"]["ports"][0]["host_port"] == first + 1
        assert three["hostname"] in _get(f"http://127.0.0.1:{first + 1}/hostname")
    finally:
        blocker.close()
        for c in rt.list():
            rt.delete(c["id"], force=True)


def _ports(text: str) -> list[dict]:
    from runtime.network import parse_publish

    return [vars(m) for m in parse_publish(text)]


def _network_cli(rt, *argv) -> int:
    from runtime.cli import networks

    parser = argparse.ArgumentParser(prog="berth")
    networks.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["network", *argv])
    args.config = rt.config
    return args.func(args)


def test_network_rm_refused_while_a_stopped_container_names_it(rt, capsys):
    rt.networks.create("nettestkeep", subnet=free_subnet())
    try:
        state = rt.run(_spec(name="netkeeper", network={"networks": ["nettestkeep"]}))
        rt.stop(state["id"], timeout=1)
        assert rt.networks.inspect("nettestkeep")["containers"] == {}  # detached when stopped
        assert _network_cli(rt, "rm", "nettestkeep") == 1
        err = capsys.readouterr().err
        assert "network nettestkeep is in use by container(s): netkeeper" in err
        assert rt.networks.inspect("nettestkeep")["name"] == "nettestkeep"
        rt.delete(state["id"])
        assert _network_cli(rt, "rm", "nettestkeep") == 0
        assert capsys.readouterr().out.strip() == "nettestkeep"
    finally:
        for c in rt.list():
            rt.delete(c["id"], force=True)
        with contextlib.suppress(NotFound):
            rt.networks.remove("nettestkeep")


def test_network_modes_host_none_and_container(rt):
    """host shares the host's stack; none has loopback only; container: joins another's."""
    host_port = _free_port()
    host_web = rt.run(
        _spec(
            name="hostmode",
            command=["httpd", "-f", "-p", f"127.0.0.1:{host_port}", "-h", "/etc"],
            network={"mode": "host"},
        )
    )
    try:
        # The server inside listens on the host's own loopback: no veth, no port map.
        assert "localhost" in _get(f"http://127.0.0.1:{host_port}/hosts")
        assert rt.networks.endpoint(host_web["id"]) is None
        host_net_ns = os.readlink("/proc/self/ns/net")
        assert os.readlink(f"/proc/{host_web['pid']}/ns/net") == host_net_ns

        isolated = rt.run(_spec(name="nonemode", network={"mode": "none"}))
        code, out = rt.exec(isolated["id"], ["ip", "-o", "link"])
        links = [line.split(":")[1].strip() for line in out.decode().splitlines()]
        assert code == 0 and links == ["lo"], out
        assert os.readlink(f"/proc/{isolated['pid']}/ns/net") != host_net_ns

        web = rt.run(_spec(name="owner", command=["httpd", "-f", "-p", "8081", "-h", "/etc"]))
        joined = rt.run(_spec(name="joiner", network={"mode": "container:owner"}))
        assert os.readlink(f"/proc/{joined['pid']}/ns/net") == os.readlink(
            f"/proc/{web['pid']}/ns/net"
        )
        # The joiner reaches the owner's server on their shared loopback.
        code, out = rt.exec(
            joined["id"], ["wget", "-q", "-O", "-", "http://127.0.0.1:8081/hostname"]
        )
        assert code == 0 and out.strip(), out
    finally:
        for name in ("joiner", "owner", "nonemode", "hostmode"):
            with contextlib.suppress(NotFound):
                rt.delete(name, force=True)


def test_stats_count_the_container_network_traffic(rt):
    port = _free_port()
    web = rt.run(
        _spec(
            name="statsweb",
            command=["httpd", "-f", "-p", "80", "-h", "/etc"],
            network={"ports": [{"container_port": 80, "host_port": port}]},
        )
    )
    try:
        before = rt.stats(web["id"])["networks"]["eth0"]
        for _ in range(5):
            _get(f"http://127.0.0.1:{port}/passwd")
        after = rt.stats(web["id"])["networks"]
        assert set(after) == {"eth0"}  # loopback is not counted, as in Docker
        assert after["eth0"]["tx_bytes"] > before["tx_bytes"]
        assert after["eth0"]["rx_packets"] > before["rx_packets"]
    finally:
        rt.delete(web["id"], force=True)


def test_connect_and_disconnect_a_running_container_and_a_stopped_one(rt):
    rt.networks.create("netjoin", subnet=free_subnet())
    try:
        server = rt.run(
            _spec(
                name="netjoinsrv",
                command=["httpd", "-f", "-p", "80", "-h", "/etc"],
                network={"networks": ["netjoin"]},
            )
        )
        client = rt.run(_spec(name="netjoincli"))
        # (busybox's wget -T crashes; the checks below need no timeout: no name, no interface.)
        fetch = ["wget", "-q", "-O-", "http://netjoinsrv/hostname"]
        assert "netjoinsrv" not in rt.exec(client["id"], ["cat", "/etc/hosts"])[1].decode()
        before = set(rt.networks.links.names_with_prefix(rt.config.prefix))

        joined = rt.connect_network(client["id"], "netjoin", aliases=["cli"])
        assert joined["spec"]["network"]["networks"] == ["bridge", "netjoin"]
        address = joined["network"]["networks"]["netjoin"]["ip"]
        assert joined["network"]["networks"]["netjoin"]["ifname"] == "eth1"
        code, output = rt.exec(client["id"], fetch)
        assert code == 0 and output.decode().strip() == server["id"][:12]
        # The peers on that network know the newcomer by name and alias.
        hosts = rt.exec(server["id"], ["cat", "/etc/hosts"])[1].decode()
        assert any(line.startswith(address) and "cli" in line for line in hosts.splitlines())
        with pytest.raises(Conflict, match="already connected"):
            rt.connect_network(client["id"], "netjoin")
        with pytest.raises(NotFound):
            rt.connect_network(client["id"], "no-such-net")
        with pytest.raises(Conflict, match="first network"):
            rt.disconnect_network(client["id"], "bridge")

        left = rt.disconnect_network(client["id"], "netjoin")
        assert left["spec"]["network"]["networks"] == ["bridge"]
        assert "netjoin" not in left["network"]["networks"]
        assert "eth1" not in rt.exec(client["id"], ["ip", "addr"])[1].decode()
        assert "netjoinsrv" not in rt.exec(client["id"], ["cat", "/etc/hosts"])[1].decode()
        assert set(rt.networks.links.names_with_prefix(rt.config.prefix)) == before
        hosts = rt.exec(server["id"], ["cat", "/etc/hosts"])[1].decode()
        assert address not in hosts

        # A stopped container joins at its next start.
        rt.stop(client["id"], timeout=1)
        rt.connect_network(client["id"], "netjoin")
        restarted = rt.start(client["id"])
        assert set(restarted["network"]["networks"]) == {"bridge", "netjoin"}
        assert rt.exec(client["id"], fetch)[0] == 0
    finally:
        for c in rt.list():
            rt.delete(c["id"], force=True)
        rt.networks.remove("netjoin")
