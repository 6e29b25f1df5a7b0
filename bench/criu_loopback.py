"""Pre-copy migration of the default container on one runtime over loopback, phase by phase.

    sudo .venv/bin/python bench/criu_loopback.py [-n MOVES] [--userns private|host]

No agents, no web: `precopy.send` and `precopy.receive` (the target in a thread) move a busybox
shell holding 64 MB of written memory (bridge network) from one container to a new one, and
back again, n times. Prints each move's downtime (freeze to the target's answer) and the marks
of both ends (BERTH_MIGRATE_TRACE, runtime/container/checkpoint.py) in ms from the freeze, so
the cost of each phase is read directly: CRIU's dump, the pages' transfer, the target's
record, cgroups, rootfs, CRIU's restore, the network wiring, the shim's handshake. Both ends
share one process here (the GIL), so the transfer is slower than between two agents.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import hmac
import os
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ["BERTH_MIGRATE_TRACE"] = "1"
os.environ["PATH"] = "/usr/local/sbin:" + os.environ.get("PATH", "")

from runtime.api import Runtime  # noqa: E402
from runtime.config import RuntimeConfig  # noqa: E402
from runtime.container import checkpoint, precopy, precopy_wire  # noqa: E402
from runtime.images import ImageStore  # noqa: E402
from runtime.images.busybox import build_image  # noqa: E402

HOLD = 'x=$(head -c 67108864 /dev/zero | tr "\\0" a); echo ready; '
KEYS = {"src": b"source", "dst": b"target"}


def _sign(host):
    return lambda msg: hmac.new(KEYS[host], msg, hashlib.sha256).digest()


def _verify(host):
    return lambda msg, sig: hmac.compare_digest(_sign(host)(msg), sig)


def _rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))


def move(rt, ref: str, new: str, name: str) -> dict:
    """One pre-copy move of `ref` to a new container `new`; returns the source's timings."""
    listener = precopy_wire.listen("127.0.0.1")
    got = {}

    def target():
        try:
            ch = precopy_wire.accept(listener, 30)
            with ch.sock:
                precopy_wire.prove_target(ch, "s", "src", _sign("dst"), _verify("src"))
                got["state"] = precopy.receive(rt, ch, name=new)
        except Exception as err:  # noqa: BLE001 (reported below)
            got["error"] = err

    thread = threading.Thread(target=target)
    thread.start()
    try:
        ch = precopy_wire.connect("127.0.0.1", listener.getsockname()[1], 30)
        with ch.sock:
            precopy_wire.prove_source(ch, "s", "src", _sign("src"), _verify("dst"))
            out = precopy.send(rt, ref, ch, name)
    finally:
        thread.join(120)
        listener.close()
    if "error" in got:
        raise got["error"]
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=4)
    parser.add_argument("--userns", choices=("private", "host"), default="private")
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="berth-bench-loopback-"))
    cfg = RuntimeConfig(root=base / "root", run_root=base / "run", prefix="bnchlb")
    rt = Runtime(cfg)
    try:
        build_image(ImageStore(cfg))
        spec = {"image": "busybox", "command": ["sh", "-c", HOLD + "while :; do sleep 3600; done"]}
        rt.run({**spec, "name": "m0", "namespaces": {"user": args.userns}})
        while _rss_kb(rt.state("m0")["pid"]) < 64 * 1024:
            time.sleep(0.1)
        downtimes = []
        for i in range(args.n):
            checkpoint.TRACE.clear()
            out = move(rt, f"m{i}", f"m{i + 1}", f"migrate-{i}")
            load = Path("/proc/loadavg").read_text().split()[0]
            downtimes.append(out["downtime_ms"])
            print(f"move {i}: downtime {out['downtime_ms']} ms (load {load})")
            marks = sorted(checkpoint.TRACE, key=lambda m: m[1])
            start = prev = dict(marks).get("src:freeze", marks[0][1])
            for label, when in marks:
                if when >= start:
                    print(f"  {(when - start) * 1000:8.1f} {(when - prev) * 1000:+7.1f}  {label}")
                    prev = when
            rt.delete(f"m{i}", force=True)
        downtimes.sort()
        print(f"downtime median {downtimes[len(downtimes) // 2]} ms, all {downtimes}")
    finally:
        for st in rt.list():
            with contextlib.suppress(Exception):
                rt.delete(st["id"], force=True)
        with contextlib.suppress(Exception):
            rt.networks.purge()
            rt.networks.close()
        for hierarchy in Path(cfg.cgroup_root).iterdir():
            with contextlib.suppress(OSError):
                os.rmdir(hierarchy / cfg.cgroup_parent)
        shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
