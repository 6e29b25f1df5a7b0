"""Networking through real containers (runtime.api.Runtime): ports, names, stop and delete."""

from __future__ import annotations

import shutil
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

from runtime.config import RuntimeConfig
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
        left = wait_gone(prefix)
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
