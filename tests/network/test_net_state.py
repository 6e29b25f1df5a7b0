"""The network state file (runtime/network/state.py): rows read as asked, changes saved together.

At 1,000 bridged containers a start or a removal parsed every endpoint of one JSON file (issue
19); now it reads the rows its question needs. No kernel object is made here.
"""

import json
import os

import pytest

from runtime.network.state import StateStore


def _endpoint(cid: str, n: int, *, ports=(), networks=("bridge",)) -> dict:
    return {
        "cid": cid,
        "name": f"c{n}",
        "pid": 1000 + n,
        "networks": {
            net: {
                "ip": f"10.{i}.{n // 250}.{n % 250 + 2}",
                "mac": f"02:42:0a:{i:02x}:00:{n % 250:02x}",
            }
            for i, net in enumerate(networks)
        },
        "ports": [dict(p) for p in ports],
    }


@pytest.fixture
def store(tmp_path):
    store = StateStore(tmp_path / "networks")
    with store.locked() as state:
        state.networks["bridge"] = {"name": "bridge", "subnet": "10.0.0.0/16", "default": True}
        state.networks["app"] = {"name": "app", "subnet": "10.1.0.0/16", "default": False}
        for n in range(300):
            ports = [{"protocol": "tcp", "host_port": 8000 + n}] if n % 100 == 0 else ()
            nets = ("bridge", "app") if n % 50 == 0 else ("bridge",)
            state.endpoints[f"{n:064x}"] = _endpoint(f"{n:064x}", n, ports=ports, networks=nets)
        store.save(state)
    return store


def test_questions_read_only_the_rows_they_need(store):
    with store.locked() as state:
        addresses, macs = (
            state.endpoints.held("bridge", "ip"),
            state.endpoints.held("bridge", "mac"),
        )
        assert (
            "10.0.1.2" in addresses and "10.0.1.1" not in addresses and "10.1.0.2" not in addresses
        )
        assert "02:42:0a:00:00:07" in macs and "02:42:0a:00:00:07" not in state.endpoints.held(
            "app", "mac"
        )
        assert sorted(p["host_port"] for p in state.endpoints.published()) == [8000, 8100, 8200]
        assert [cid[-2:] for cid, _ in state.endpoints.on_network("app")] == [
            f"{n:064x}"[-2:] for n in range(0, 300, 50)
        ]
        assert state.endpoints.named("c7")["pid"] == 1007
        # Addresses, MACs and published ports came from columns and indexes: only the members
        # of "app" and the endpoint of a name were parsed, never the 300.
        assert len(state.endpoints._loaded) == 7


def test_edits_in_place_pops_and_additions_are_saved_together(store):
    first, second = f"{1:064x}", f"{2:064x}"
    with store.locked() as state:
        state.endpoints[first]["networks"]["app"] = {"ip": "10.1.9.9", "mac": "02:42:0a:01:09:09"}
        state.endpoints.pop(second)
        state.endpoints["n" * 64] = _endpoint(
            "n" * 64, 299, ports=[{"protocol": "udp", "host_port": 53}]
        )
        state.networks["app"]["last_ip"] = "10.1.9.9"
        store.save(state)
    again = store.load()
    assert "10.1.9.9" in again.endpoints.held("app", "ip")
    assert "10.0.0.4" not in again.endpoints.held("bridge", "ip")  # the popped one's address
    assert second not in again.endpoints and len(again.endpoints) == 300
    assert 53 in {p["host_port"] for p in again.endpoints.published()}
    assert again.networks["app"]["last_ip"] == "10.1.9.9"


def test_what_is_not_saved_is_forgotten(store):
    before = store.load().as_dict()
    with store.locked() as state:
        state.endpoints.pop(f"{3:064x}")
        state.endpoints["x" * 64] = _endpoint("x" * 64, 1)
        del state.networks["app"]
        # No save: a failed attach leaves the state as it was.
    assert store.load().as_dict() == before


def test_a_state_json_of_an_older_version_is_moved_in(tmp_path):
    directory = tmp_path / "networks"
    directory.mkdir()
    old = {
        "networks": {"bridge": {"name": "bridge", "subnet": "10.0.0.0/16", "default": True}},
        "endpoints": {
            "a" * 64: _endpoint("a" * 64, 5, ports=[{"protocol": "tcp", "host_port": 80}])
        },
    }
    (directory / "state.json").write_text(json.dumps(old))
    store = StateStore(directory)
    state = store.load()
    assert state.as_dict() == old
    assert old["endpoints"]["a" * 64]["networks"]["bridge"]["ip"] in state.endpoints.held(
        "bridge", "ip"
    )
    assert not (directory / "state.json").exists()
    assert os.stat(directory / "state.db").st_mode & 0o077 == 0  # addresses and ports: private


def test_removed_state_is_made_anew(store):
    store.load()  # this thread's connection is open
    store.remove()
    state = store.load()
    assert state.networks == {} and len(state.endpoints) == 0
