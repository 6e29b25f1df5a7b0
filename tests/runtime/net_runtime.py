"""A Runtime with its own prefix, roots and bridge subnet, for tests that need the network."""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import secrets
import shutil
import socket
import string
import subprocess
import tempfile
import time
from pathlib import Path

from runtime.config import RuntimeConfig

_CANDIDATES = [f"10.217.{n}.0/24" for n in range(256)]


def free_subnet() -> str:
    """A /24 in 10.217.0.0/16 that no host route overlaps."""
    from runtime.network import ipam

    routes = ipam.host_routes()
    for candidate in _CANDIDATES:
        net = ipaddress.IPv4Network(candidate)
        if not any(net.overlaps(r) for r in routes):
            return candidate
    raise RuntimeError("no free test subnet in 10.217.0.0/16")


def free_port() -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def net_runtime():
    """Yield a Runtime (prefix `tr` + 4 characters) and remove everything it made afterwards."""
    from runtime.api import Runtime
    from runtime.images import ImageStore
    from runtime.images.busybox import build_image

    base = Path(tempfile.mkdtemp(prefix="berth-rtnet-"))
    prefix = "tr" + "".join(
        secrets.choice(string.ascii_lowercase + string.digits) for _ in range(4)
    )
    config = RuntimeConfig(
        root=base / "root",
        run_root=base / "run",
        prefix=prefix,
        extra={"default_subnet": free_subnet()},
    )
    rt = Runtime(config)
    try:
        build_image(ImageStore(config))
        yield rt
    finally:
        for cid in rt.store.ids():
            with contextlib.suppress(Exception):
                rt.delete(cid, force=True)
        with contextlib.suppress(Exception):
            rt.reconcile()
        with contextlib.suppress(Exception):
            for cid in rt.cgroups.list():
                rt.cgroups.destroy(cid)
        for hierarchy in config.cgroup_root.iterdir():
            with contextlib.suppress(OSError):
                os.rmdir(hierarchy / config.cgroup_parent)
        with contextlib.suppress(Exception):
            rt.networks.purge()
            rt.networks.close()
        shutil.rmtree(base, ignore_errors=True)


def nft_ports(prefix: str) -> str:
    """The text of Berth's nft table for `prefix` ('' when the table does not exist)."""
    result = subprocess.run(
        ["nft", "-j", "list", "table", "ip", prefix], capture_output=True, text=True
    )
    if result.returncode != 0:
        return ""
    return json.dumps(json.loads(result.stdout))


def poll(check, timeout: float = 10.0) -> bool:
    """True as soon as check() is true; False once `timeout` seconds passed without it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.05)
    return bool(check())
