"""What a container holds is released when its program exits on its own (ports; --rm)."""

from __future__ import annotations

import os

import pytest
from net_runtime import free_port, net_runtime, nft_ports, poll

pytestmark = pytest.mark.root


@pytest.fixture(scope="module")
def nrt():
    """A Runtime with a bridge network of its own."""
    if os.geteuid() != 0:
        pytest.skip("needs root")
    with net_runtime() as rt:
        yield rt


def _web(port: int, command: list[str], **kw) -> dict:
    return {
        "image": "busybox",
        "command": command,
        "network": {"ports": [{"container_port": 80, "host_port": port}]},
        **kw,
    }


def test_port_map_goes_when_the_program_exits_and_returns_on_start(nrt):
    port = free_port()
    state = nrt.run(_web(port, ["sh", "-c", "read x < /dev/null; sleep 0.3; exit 3"]))
    cid = state["id"]
    try:
        assert str(port) in nft_ports(nrt.config.prefix)
        assert nrt.wait(cid) == 3
        # Nobody called stop or delete: the shim's post-exit hook releases the map.
        assert poll(lambda: str(port) not in nft_ports(nrt.config.prefix))
        assert poll(lambda: nrt.networks.endpoint(cid) is None)
        assert nrt.state(cid)["status"] == "stopped"
        nrt.start(cid)
        assert str(port) in nft_ports(nrt.config.prefix)
        assert nrt.networks.endpoint(cid) is not None
    finally:
        nrt.delete(cid, force=True)
    assert str(port) not in nft_ports(nrt.config.prefix)


def test_port_map_goes_after_a_kill(nrt):
    port = free_port()
    cid = nrt.run(_web(port, ["sleep", "1000"]))["id"]
    try:
        nrt.kill(cid, "KILL")
        assert poll(lambda: str(port) not in nft_ports(nrt.config.prefix))
        assert poll(lambda: nrt.networks.endpoint(cid) is None)
    finally:
        nrt.delete(cid, force=True)


def test_restart_policy_keeps_the_container_mapped(nrt):
    port = free_port()
    cid = nrt.run(_web(port, ["sh", "-c", "sleep 0.2; exit 1"], restart={"name": "always"}))["id"]
    try:
        assert poll(lambda: nrt.state(cid)["restart_count"] >= 2)
        assert poll(lambda: nrt.state(cid)["status"] == "running")
        assert nrt.networks.endpoint(cid) is not None
    finally:
        nrt.delete(cid, force=True)
    assert poll(lambda: str(port) not in nft_ports(nrt.config.prefix))


def test_run_with_auto_remove_deletes_the_container_when_it_exits(nrt):
    port = free_port()
    cid = nrt.run(_web(port, ["sh", "-c", "sleep 0.2"]), auto_remove=True)["id"]
    assert poll(lambda: cid not in nrt.store.ids())
    assert nrt.cgroups.list() == []
    assert nrt.networks.endpoint(cid) is None
    assert str(port) not in nft_ports(nrt.config.prefix)
    assert not (nrt.config.run_containers_dir / cid).exists()


def test_stop_of_an_auto_remove_container_removes_it(nrt):
    cid = nrt.run(_web(free_port(), ["sleep", "1000"]), auto_remove=True)["id"]
    assert nrt.restart(cid, timeout=1)["status"] == "running"  # restart keeps it
    nrt.stop(cid, timeout=1)
    assert poll(lambda: cid not in nrt.store.ids())
    assert nrt.cgroups.list() == []


def test_auto_remove_with_a_restart_policy_is_refused(nrt):
    from runtime.errors import InvalidSpec

    spec = _web(free_port(), ["true"], restart={"name": "always"})
    with pytest.raises(InvalidSpec, match="conflicting options"):
        nrt.run(spec, auto_remove=True)
    assert nrt.store.ids() == []
