"""Names between containers (user networks, aliases, --link), isolation, several networks, MACs."""

import subprocess

import pytest

from runtime.errors import Conflict, NotFound
from runtime.spec import NetworkSpec

from .conftest import free_subnet, run_in, wget_in

pytestmark = pytest.mark.root


def test_names_and_aliases_on_a_user_network(manager, procs, files):
    manager.create("app", subnet=free_subnet())
    db, web = procs.httpd("from-db"), procs.sleeper()
    db_files, web_files = files("db"), files("web")
    db_res = manager.attach(
        "1" * 64,
        "db",
        db.pid,
        NetworkSpec(networks=["app"], aliases=["database"]),
        "db",
        None,
        db_files,
    )
    manager.attach("2" * 64, "web", web.pid, NetworkSpec(networks=["app"]), "web", None, web_files)
    db_ip = db_res["networks"]["app"]["ip"]
    for name in ("db", "database"):
        got = wget_in(web.pid, f"http://{name}/", hosts_file=web_files["hosts"])
        assert got.returncode == 0 and got.stdout.strip() == "from-db", got.stderr
    assert f"{db_ip}\tdb database" in web_files["hosts"].read_text()
    # The member that was there first learns about the newcomer, and forgets it when it leaves.
    assert "\tweb " in db_files["hosts"].read_text()
    manager.detach("2" * 64)
    assert "web" not in db_files["hosts"].read_text().split("\n", 7)[-1]


def test_no_path_between_networks_but_a_container_may_join_both(manager, procs, files):
    manager.create("red", subnet=free_subnet())
    manager.create("blue", subnet=free_subnet())
    red, blue, both = procs.httpd("red"), procs.httpd("blue"), procs.sleeper()
    red_ip = manager.attach(
        "r" * 64, "red1", red.pid, NetworkSpec(networks=["red"]), None, None, files("r")
    )["networks"]["red"]["ip"]
    blue_ip = manager.attach(
        "b" * 64, "blue1", blue.pid, NetworkSpec(networks=["blue"]), None, None, files("b")
    )["networks"]["blue"]["ip"]
    assert wget_in(blue.pid, f"http://{red_ip}/").returncode != 0
    assert wget_in(red.pid, f"http://{blue_ip}/").returncode != 0
    result = manager.attach(
        "x" * 64, "both", both.pid, NetworkSpec(networks=["red", "blue"]), None, None, files("x")
    )
    assert [n["ifname"] for n in result["networks"].values()] == ["eth0", "eth1"]
    assert wget_in(both.pid, f"http://{red_ip}/").stdout.strip() == "red"
    assert wget_in(both.pid, f"http://{blue_ip}/").stdout.strip() == "blue"


def test_link_on_the_default_network(manager, procs, files):
    db, app = procs.httpd("linked"), procs.sleeper()
    pg_files = files("pg")
    manager.attach("d" * 64, "pg", db.pid, NetworkSpec(), None, None, pg_files)
    app_files = files("app")
    with pytest.raises(NotFound, match="cannot link to ghost"):
        manager.attach(
            "a" * 64, "app", app.pid, NetworkSpec(links=["ghost:db"]), None, None, app_files
        )
    manager.attach("a" * 64, "app", app.pid, NetworkSpec(links=["pg:db"]), None, None, app_files)
    got = wget_in(app.pid, "http://db/", hosts_file=app_files["hosts"])
    assert got.returncode == 0 and got.stdout.strip() == "linked", got.stderr
    # On the default network there is no name resolution without a link.
    assert "app" not in pg_files["hosts"].read_text()


def test_mac_address_static_ip_dns_and_extra_hosts(manager, procs, files):
    manager.create("fixed", subnet=free_subnet())
    subnet = manager.inspect("fixed")["subnet"]
    wanted_ip = subnet.replace(".0/24", ".77")
    proc, other = procs.sleeper(), procs.sleeper()
    paths = files("m")
    spec = NetworkSpec(
        networks=["fixed"],
        mac_address="02:aa:bb:cc:dd:ee",
        ip_address=wanted_ip,
        dns=["192.0.2.53"],
        dns_search=["corp.test"],
        extra_hosts=["gw.test:192.0.2.99"],
    )
    result = manager.attach("m" * 64, "m", proc.pid, spec, "mhost", None, paths)
    assert result["networks"]["fixed"]["ip"] == wanted_ip
    assert "02:aa:bb:cc:dd:ee" in run_in(proc.pid, ["ip", "link", "show", "eth0"]).stdout
    assert paths["resolv.conf"].read_text() == "nameserver 192.0.2.53\nsearch corp.test\n"
    hosts = paths["hosts"].read_text()
    assert f"{wanted_ip}\tmhost m" in hosts and "192.0.2.99\tgw.test" in hosts
    with pytest.raises(Conflict, match="already in use"):
        manager.attach(
            "o" * 64,
            "o",
            other.pid,
            NetworkSpec(networks=["fixed"], ip_address=wanted_ip),
            None,
            None,
            files("o"),
        )
    with pytest.raises(Conflict, match="MAC address"):
        manager.attach(
            "o" * 64,
            "o",
            other.pid,
            NetworkSpec(networks=["fixed"], mac_address="02:aa:bb:cc:dd:ee"),
            None,
            None,
            files("o2"),
        )


def test_the_bridge_knows_a_returning_address_at_once(manager, procs, files):
    """A container's address coming back (a migrated or restarted container) replaces whatever
    neighbour entry its bridge kept for it, so packets go to the new MAC at once instead of
    waiting up to a second for the next ARP probe of an incomplete or stale entry."""
    manager.create("back", subnet=free_subnet())
    bridge = manager.inspect("back")["bridge"]
    ip = manager.inspect("back")["subnet"].replace(".0/24", ".88")
    # What a container that went away leaves: an entry with the wrong (old) link address.
    subprocess.run(
        [
            "ip",
            "neigh",
            "replace",
            ip,
            "lladdr",
            "02:00:00:00:00:01",
            "dev",
            bridge,
            "nud",
            "stale",
        ],
        check=True,
    )
    proc = procs.sleeper()
    spec = NetworkSpec(networks=["back"], ip_address=ip, mac_address="02:aa:bb:cc:dd:88")
    manager.attach("n" * 64, "n", proc.pid, spec, "nhost", None, files("n"))
    entry = subprocess.run(
        ["ip", "neigh", "show", ip, "dev", bridge], capture_output=True, text=True, check=True
    ).stdout
    assert "02:aa:bb:cc:dd:88" in entry and "REACHABLE" in entry, entry
