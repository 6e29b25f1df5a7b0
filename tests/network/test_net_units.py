"""Pure-Python parts of networking: -p parsing, resolv.conf rules, subnet choice, rule text."""

import ipaddress

import pytest

from runtime.errors import Conflict, InvalidSpec
from runtime.network import dnsfiles, ipam, ruleset
from runtime.network.ports import parse_exposed, parse_publish


def test_parse_publish_forms():
    (m,) = parse_publish("8080:80")
    assert (m.host_ip, m.host_port, m.container_port, m.protocol) == ("", 8080, 80, "tcp")
    (m,) = parse_publish("127.0.0.1:5353:53/udp")
    assert (m.host_ip, m.host_port, m.container_port, m.protocol) == ("127.0.0.1", 5353, 53, "udp")
    (m,) = parse_publish("80")
    assert (m.host_port, m.container_port) == (0, 80)
    ranged = parse_publish("9000-9002:7000-7002")
    assert [(m.host_port, m.container_port) for m in ranged] == [
        (9000, 7000),
        (9001, 7001),
        (9002, 7002),
    ]
    assert [m.container_port for m in parse_publish("127.0.0.1::80-81")] == [80, 81]


@pytest.mark.parametrize(
    "text",
    ["70000:80", "80:0", "8080:80/sctp", "1.2.3:80:80", "9000-9001:80-82", "abc", "9002-9000:1-3"],
)
def test_parse_publish_refuses_bad_input(text):
    with pytest.raises(InvalidSpec):
        parse_publish(text)


def test_parse_exposed():
    assert parse_exposed({"80/tcp": {}, "53/udp": {}, "9/sctp": {}}) == [(80, "tcp"), (53, "udp")]
    assert parse_exposed(["8080"]) == [(8080, "tcp")]
    assert parse_exposed(None) == []


def test_resolv_conf_rules():
    host = {"nameservers": ["10.0.0.53"], "search": ["corp.example"], "options": ["ndots:2"]}
    text = dnsfiles.resolv_conf([], [], host)
    assert "nameserver 10.0.0.53" in text and "search corp.example" in text and "ndots:2" in text
    loopback_only = {"nameservers": ["127.0.0.53"], "search": [], "options": []}
    assert dnsfiles.resolv_conf([], [], loopback_only).split() == [
        "nameserver",
        "8.8.8.8",
        "nameserver",
        "8.8.4.4",
    ]
    given = dnsfiles.resolv_conf(["1.1.1.1"], ["svc.local"], host)
    assert given == "nameserver 1.1.1.1\nsearch svc.local\n"


def test_subnet_choice_skips_routes_and_networks():
    routes = [ipaddress.IPv4Network("172.17.0.0/16"), ipaddress.IPv4Network("172.18.5.0/24")]
    taken = {"a": ipaddress.IPv4Network("172.19.0.0/16")}
    assert str(ipam.pick_subnet(taken, routes)) == "172.20.0.0/16"
    with pytest.raises(Conflict, match="overlaps network 'a'"):
        ipam.check_free(ipaddress.IPv4Network("172.19.1.0/24"), taken, routes)
    with pytest.raises(Conflict, match="route"):
        ipam.check_free(ipaddress.IPv4Network("172.18.0.0/16"), taken, routes)


def test_gateway_and_addresses():
    net = ipam.parse_subnet("10.9.0.0/29")
    assert ipam.parse_gateway(None, net) == "10.9.0.1"
    with pytest.raises(InvalidSpec, match="not a host address"):
        ipam.parse_gateway("10.9.1.1", net)
    with pytest.raises(InvalidSpec):
        ipam.parse_subnet("10.9.0.1/24")  # host bits set
    used = {"10.9.0.2", "10.9.0.3"}
    assert ipam.allocate(net, "10.9.0.1", used) == "10.9.0.4"
    with pytest.raises(Conflict):
        ipam.allocate(net, "10.9.0.1", used, wanted="10.9.0.3")
    with pytest.raises(Conflict, match="no free address"):
        ipam.allocate(net, "10.9.0.1", {f"10.9.0.{i}" for i in range(2, 7)})
    # Round robin: after .4 comes .5 even though .2 is free again; then it wraps around.
    assert ipam.allocate(net, "10.9.0.1", {"10.9.0.3"}, after="10.9.0.4") == "10.9.0.5"
    assert ipam.allocate(net, "10.9.0.1", {"10.9.0.3"}, after="10.9.0.6") == "10.9.0.2"
    assert ipam.mac_for("10.9.0.2") == "02:42:0a:09:00:02"


def test_ruleset_text():
    text = ruleset.render(
        "tnx",
        [{"bridge": "tnx0", "subnet": "10.9.0.0/24"}],
        [
            {
                "host_ip": "",
                "host_port": 8080,
                "container_port": 80,
                "protocol": "tcp",
                "ip": "10.9.0.2",
            },
            {
                "host_ip": "127.0.0.1",
                "host_port": 53,
                "container_port": 53,
                "protocol": "udp",
                "ip": "10.9.0.2",
            },
        ],
    )
    assert text.startswith("add table ip tnx\ndelete table ip tnx\ntable ip tnx {")
    assert "elements = { 8080 : 10.9.0.2 . 80 }" in text
    assert "elements = { 127.0.0.1 . 53 : 10.9.0.2 . 53 }" in text
    assert "dnat ip to ip daddr . udp dport map @udp_ip" in text
    assert 'ip saddr 10.9.0.0/24 oifname != "tnx0" masquerade' in text
    assert 'oifname "tnx0" drop' in text
    assert 'iifname "tnx0" ip daddr 127.0.0.0/8 drop' in text


def test_parse_publish_host_range_for_one_container_port():
    (m,) = parse_publish("8000-8010:80")
    assert (m.host_port, m.host_port_end, m.container_port, m.protocol) == (8000, 8010, 80, "tcp")
    (m,) = parse_publish("127.0.0.1:5300-5301:53/udp")
    assert (m.host_ip, m.host_port, m.host_port_end, m.protocol) == ("127.0.0.1", 5300, 5301, "udp")
    (m,) = parse_publish("8080:80")
    assert m.host_port_end == 0  # a single port is not a range


def test_port_range_in_spec_round_trips_and_bad_ranges_are_refused():
    from runtime.spec import ContainerSpec, PortMapping

    data = {
        "image": "busybox",
        "network": {"ports": [{"container_port": 80, "host_port": 8000, "host_port_end": 8010}]},
    }
    spec = ContainerSpec.from_dict(data)
    assert ContainerSpec.from_dict(spec.to_dict()).to_dict() == spec.to_dict()
    assert spec.to_dict()["network"]["ports"][0]["host_port_end"] == 8010
    for bad in ({"host_port": 8010, "host_port_end": 8000}, {"host_port_end": 8000}):
        with pytest.raises(InvalidSpec, match="invalid host port range"):
            PortMapping.from_dict({"container_port": 80, **bad})
    with pytest.raises(InvalidSpec, match="host port range end"):
        PortMapping.from_dict({"container_port": 80, "host_port": 1, "host_port_end": 70000})


def test_platform_serializer_mirrors_port_range():
    from rest_framework.exceptions import ValidationError

    from containers.api.spec import parse_spec
    from runtime.spec import ContainerSpec

    body = {"image": "busybox", "network": {"ports": [{"container_port": 80, "host_port": 8000}]}}
    body["network"]["ports"][0]["host_port_end"] = 8010
    assert parse_spec(dict(body)) == ContainerSpec.from_dict(dict(body)).to_dict()
    body["network"]["ports"][0]["host_port"] = 9000
    with pytest.raises(ValidationError, match="invalid host port range"):
        parse_spec(dict(body))
