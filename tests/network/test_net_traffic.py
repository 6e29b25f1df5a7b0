"""Real traffic through published ports: host loopback, another machine, UDP, -P, hairpin, restore."""

import os
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from runtime.errors import Conflict, InvalidSpec, NotFound
from runtime.network import nft, parse_publish
from runtime.spec import NetworkSpec, PortMapping

from .conftest import BUSYBOX, leftovers, run_in, wait_gone_except, wget_in, wget_outside

pytestmark = pytest.mark.root


def _free_port(proto=socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, proto) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=3) as resp:
        return resp.read().decode().strip()


def _refused(url: str) -> bool:
    try:
        _get(url)
    except OSError:
        return True
    return False


def test_published_port_from_host_loopback_and_after_detach(manager, procs, files):
    web = procs.httpd("from-web")
    port = _free_port()
    cid = "a" * 64
    result = manager.attach(
        cid,
        "web",
        web.pid,
        NetworkSpec(ports=parse_publish(f"{port}:80")),
        "web",
        None,
        files("web"),
    )
    ip = result["networks"]["bridge"]["ip"]
    assert result["ports"] == [
        {"host_ip": "", "host_port": port, "container_port": 80, "protocol": "tcp", "ip": ip}
    ]
    assert _get(f"http://127.0.0.1:{port}/") == "from-web"
    # The container itself has its address, loopback and a default route.
    addrs = run_in(web.pid, ["ip", "-4", "-o", "addr"]).stdout
    assert (
        f"inet {ip}/24" in addrs
        and "lo    inet 127.0.0.1/8" in addrs.replace("  ", "    ")[:200]
        or "127.0.0.1/8" in addrs
    )
    assert (
        f"default via {result['networks']['bridge']['gateway']} dev eth0"
        in run_in(web.pid, ["ip", "route"]).stdout
    )
    manager.detach(cid)
    manager.detach(cid)  # idempotent
    assert _refused(f"http://127.0.0.1:{port}/")
    assert manager.inspect("bridge")["containers"] == {}


def test_published_port_from_another_machine(manager, procs, files, outside):
    web = procs.httpd("remote-ok")
    port = _free_port()
    result = manager.attach(
        "b" * 64,
        "web",
        web.pid,
        NetworkSpec(ports=parse_publish(f"{port}:80")),
        None,
        None,
        files("web"),
    )
    got = wget_outside(outside["netns"], f"http://{outside['host_ip']}:{port}/")
    assert got.returncode == 0 and got.stdout.strip() == "remote-ok"
    # The other machine routes the container subnet through us: a direct hit on the container
    # address (no published port) must be dropped.
    ip = result["networks"]["bridge"]["ip"]
    subnet = manager.inspect("bridge")["subnet"]
    subprocess.run(
        ["ip", "-n", outside["netns"], "route", "add", subnet, "via", outside["host_ip"]],
        check=True,
    )
    direct = wget_outside(outside["netns"], f"http://{ip}:80/")
    assert direct.returncode != 0


def test_host_ip_binding_only_answers_there(manager, procs, files, outside):
    web = procs.httpd("local-only")
    port = _free_port()
    spec = NetworkSpec(ports=parse_publish(f"127.0.0.1:{port}:80"))
    manager.attach("c" * 64, "web", web.pid, spec, None, None, files("web"))
    assert _get(f"http://127.0.0.1:{port}/") == "local-only"
    assert wget_outside(outside["netns"], f"http://{outside['host_ip']}:{port}/").returncode != 0


def test_udp_mapping(manager, procs, files):
    server = procs.udp_echo(5353)
    port = _free_port(socket.SOCK_DGRAM)
    spec = NetworkSpec(ports=parse_publish(f"{port}:5353/udp"))
    manager.attach("d" * 64, "dns", server.pid, spec, None, None, files("dns"))
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(1)
        for _ in range(5):  # UDP may lose the first datagram while the server starts
            s.sendto(b"ping", ("127.0.0.1", port))
            try:
                data, _ = s.recvfrom(100)
                break
            except TimeoutError:
                continue
        else:
            pytest.fail("no UDP answer through the published port")
    assert data == b"echo:ping"


def test_publish_all_exposed_ports(manager, procs, files):
    web = procs.httpd("dash-P")
    result = manager.attach(
        "e" * 64, "web", web.pid, NetworkSpec(publish_all=True), None, {"80/tcp": {}}, files("web")
    )
    (mapping,) = result["ports"]
    assert mapping["container_port"] == 80 and mapping["host_port"] > 1024
    assert _get(f"http://127.0.0.1:{mapping['host_port']}/") == "dash-P"


def test_hairpin_container_reaches_published_ports(manager, procs, files):
    web = procs.httpd("hairpin")
    client = procs.sleeper()
    port = _free_port()
    result = manager.attach(
        "f" * 64,
        "web",
        web.pid,
        NetworkSpec(ports=parse_publish(f"{port}:80")),
        None,
        None,
        files("web"),
    )
    manager.attach("g" * 64, "client", client.pid, NetworkSpec(), None, None, files("client"))
    gateway = result["networks"]["bridge"]["gateway"]
    for pid in (client.pid, web.pid):  # another container, and the container itself
        got = wget_in(pid, f"http://{gateway}:{port}/")
        assert got.returncode == 0 and got.stdout.strip() == "hairpin", got.stderr


def test_port_conflicts_leave_nothing(manager, procs, files, prefix):
    web = procs.httpd()
    other = procs.sleeper()
    port = _free_port()
    manager.attach(
        "h" * 64,
        "web",
        web.pid,
        NetworkSpec(ports=parse_publish(f"{port}:80")),
        None,
        None,
        files("web"),
    )
    before = sorted(leftovers(prefix))
    state_before = manager.store.load().as_dict()
    with pytest.raises(Conflict, match="already published by Berth"):
        manager.attach(
            "i" * 64,
            "x",
            other.pid,
            NetworkSpec(ports=parse_publish(f"{port}:81")),
            None,
            None,
            files("x"),
        )
    with socket.socket() as listener:
        listener.bind(("0.0.0.0", 0))
        listener.listen()
        taken = listener.getsockname()[1]
        with pytest.raises(Conflict, match=r"already in use by \S+ \(pid \d+\)"):
            manager.attach(
                "i" * 64,
                "x",
                other.pid,
                NetworkSpec(ports=parse_publish(f"{taken}:80")),
                None,
                None,
                files("x2"),
            )
    with pytest.raises(NotFound, match="network nope not found"):
        manager.attach(
            "i" * 64, "x", other.pid, NetworkSpec(networks=["nope"]), None, None, files("x3")
        )
    with pytest.raises(InvalidSpec, match="shares the host's network namespace"):
        manager.attach("i" * 64, "x", os.getpid(), NetworkSpec(), None, None, files("x4"))
    with pytest.raises(InvalidSpec, match="not an address of this host"):
        spec = NetworkSpec(ports=parse_publish("203.0.113.9:8080:80"))
        manager.attach("i" * 64, "x", other.pid, spec, None, None, files("x5"))
    with pytest.raises(InvalidSpec, match="MAC"):
        NetworkSpec(mac_address="01:00:00:00:00:01").validate()
    with pytest.raises(InvalidSpec):
        PortMapping(container_port=80, host_port=70000).validate()
    # Nothing half-done: no new interface, no allocation, and the container has no eth0.
    assert sorted(leftovers(prefix)) == before
    assert manager.store.load().as_dict() == state_before
    assert "eth0" not in run_in(other.pid, ["ip", "-o", "link"]).stdout


def test_failure_inside_netns_rolls_back(manager, procs, files, prefix):
    manager.ensure_default()
    clash = procs.sleeper()
    # eth0 already exists inside: the veth pair cannot be created.
    run_in(clash.pid, ["ip", "link", "add", "eth0", "type", "veth", "peer", "name", "other"])
    routed = procs.sleeper()
    # A default route already exists inside: configuring the netns fails after the veth exists.
    for cmd in (
        ["ip", "link", "add", "x1", "type", "veth", "peer", "name", "x2"],
        ["ip", "link", "set", "x1", "up"],
        ["ip", "addr", "add", "10.99.0.1/24", "dev", "x1"],
        ["ip", "route", "add", "default", "via", "10.99.0.2"],
    ):
        assert run_in(routed.pid, cmd).returncode == 0
    before = sorted(leftovers(prefix))
    state_before = manager.store.load().as_dict()
    with pytest.raises(Conflict, match="already exists"):
        manager.attach(
            "j" * 64, "x", clash.pid, NetworkSpec(ports=parse_publish("80")), None, None, files("x")
        )
    with pytest.raises(Conflict, match="default route via .* already exists"):
        manager.attach(
            "j" * 64,
            "x",
            routed.pid,
            NetworkSpec(ports=parse_publish("80")),
            None,
            None,
            files("y"),
        )
    assert wait_gone_except(prefix, before) == before
    assert manager.store.load().as_dict() == state_before
    assert "eth0" not in run_in(routed.pid, ["ip", "-o", "link"]).stdout
    assert "elements" not in nft.run(f"list table ip {prefix}")


def test_restore_after_flush_and_dead_containers(manager, procs, files, prefix):
    web = procs.httpd("restored")
    gone = procs.sleeper()
    port = _free_port()
    manager.attach(
        "k" * 64,
        "web",
        web.pid,
        NetworkSpec(ports=parse_publish(f"{port}:80")),
        None,
        None,
        files("web"),
    )
    manager.attach(
        "l" * 64,
        "gone",
        gone.pid,
        NetworkSpec(ports=parse_publish("80")),
        None,
        None,
        files("gone"),
    )
    procs.stop(gone)  # died without detach (agent was down)
    nft.delete_table("ip", prefix)  # as after a reboot or someone's `nft flush ruleset`
    subprocess.run(["ip", "link", "del", f"{prefix}0"], check=True)  # and the bridge is gone
    assert _refused(f"http://127.0.0.1:{port}/")
    assert manager.restore() == ["l" * 64]
    assert _get(f"http://127.0.0.1:{port}/") == "restored"
    assert list(manager.store.load().endpoints) == ["k" * 64]


def test_mode_none_has_loopback_only(manager, procs, files):
    proc = procs.sleeper()
    paths = files("none")
    result = manager.attach(
        "m" * 64, "loner", proc.pid, NetworkSpec(mode="none"), "loner", None, paths
    )
    assert result == {"networks": {}, "ports": []}
    links = run_in(proc.pid, ["ip", "-o", "link"]).stdout
    assert "lo:" in links and "UP" in links.split("lo:")[1].split("\n")[0]
    assert "eth0" not in links
    assert "127.0.0.1\tlocalhost" in paths["hosts"].read_text()
    assert "nameserver" in paths["resolv.conf"].read_text()


def test_containers_cannot_reach_host_loopback_services(manager, procs, files):
    """route_localnet on the bridge must not open the host's 127.0.0.1 to containers."""
    attacker = procs.sleeper()
    result = manager.attach(
        "n" * 64, "evil", attacker.pid, NetworkSpec(), None, None, files("evil")
    )
    gateway = result["networks"]["bridge"]["gateway"]
    # Inside its own netns a root-ish container can route 127.0.0.0/8 out of eth0.
    for cmd in (
        ["sysctl", "-qw", "net.ipv4.conf.eth0.route_localnet=1"],
        ["sysctl", "-qw", "net.ipv4.conf.all.route_localnet=1"],
        ["ip", "route", "del", "local", "127.0.0.0/8", "dev", "lo", "table", "local"],
        ["ip", "route", "del", "local", "127.0.0.1", "dev", "lo", "table", "local"],
        ["ip", "route", "add", "127.0.0.1/32", "via", gateway, "dev", "eth0"],
    ):
        got = run_in(attacker.pid, cmd)
        assert got.returncode == 0, (cmd, got.stderr)
    # UDP shows whether a packet arrives at all (TCP would also need the answer to return).
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as listener:
        listener.bind(("127.0.0.1", 0))
        port = listener.getsockname()[1]
        sender = f"import socket; socket.socket(2, 2).sendto(b'x', ('127.0.0.1', {port}))"
        assert run_in(attacker.pid, [sys.executable, "-c", sender]).returncode == 0
        listener.settimeout(1)
        try:
            listener.recv(10)
            reached = True
        except TimeoutError:
            reached = False
    assert not reached, "a container reached a service bound to the host's 127.0.0.1"


def test_outbound_traffic_is_masqueraded(manager, procs, files, outside, tmp_path):
    """A container reaches another machine that has no route back to container subnets."""
    www = tmp_path / "outside-www"
    www.mkdir()
    (www / "index.html").write_text("outside\n")
    server = subprocess.Popen(
        [
            "ip",
            "netns",
            "exec",
            outside["netns"],
            BUSYBOX,
            "httpd",
            "-f",
            "-p",
            "80",
            "-h",
            str(www),
        ]
    )
    try:
        client = procs.sleeper()
        manager.attach("o" * 64, "out", client.pid, NetworkSpec(), None, None, files("out"))
        for _ in range(50):  # the outside httpd may still be starting
            got = wget_in(client.pid, f"http://{outside['ip']}/")
            if got.returncode == 0:
                break
            time.sleep(0.1)
        assert got.stdout.strip() == "outside", got.stderr
    finally:
        server.kill()
        server.wait()
