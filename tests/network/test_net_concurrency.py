"""Concurrent starts: separate processes attach at once and never share an address or port."""

import multiprocessing

import pytest

from runtime.network import NetworkManager
from runtime.spec import NetworkSpec, PortMapping

pytestmark = pytest.mark.root


def _attach(args):
    config, cid, pid, files = args
    manager = NetworkManager(config)  # a separate process: its own netlink socket and lock fd
    try:
        spec = NetworkSpec(ports=[PortMapping(container_port=80)])
        return manager.attach(cid, f"c{cid[:4]}", pid, spec, None, None, files)
    finally:
        manager.close()


def test_parallel_attach_gets_distinct_addresses_and_ports(manager, procs, files):
    manager.ensure_default()
    sleepers = [procs.sleeper() for _ in range(8)]
    jobs = [
        (manager.config, f"{i:04d}" * 16, p.pid, files(f"c{i}")) for i, p in enumerate(sleepers)
    ]
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(4) as pool:
        results = pool.map(_attach, jobs)
    ips = [r["networks"]["bridge"]["ip"] for r in results]
    ports = [r["ports"][0]["host_port"] for r in results]
    assert len(set(ips)) == 8 and len(set(ports)) == 8
    state = manager.store.load()
    assert sorted(ep["networks"]["bridge"]["ip"] for ep in state.endpoints.values()) == sorted(ips)
    # What the state says is what the container has.
    from .conftest import run_in

    for proc, ip in zip(sleepers, ips, strict=True):
        assert f"inet {ip}/" in run_in(proc.pid, ["ip", "-4", "-o", "addr", "show", "eth0"]).stdout
