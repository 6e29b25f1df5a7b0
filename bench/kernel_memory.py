#!/usr/bin/env python
"""Where an idle container's kernel memory goes: /proc/meminfo and /proc/slabinfo per container.

Starts N idle `sleep` containers (network none, 32 MiB limit) through the runtime in a root
of its own, drops the page cache before and after, and prints what each /proc/meminfo field
and the 25 largest slab caches grew by, divided by N. Issue 19's "memory per idle container".

    .venv/bin/python bench/kernel_memory.py [-n 500]

(as root; everything it made is deleted at the end, whatever happens).
"""

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from runtime.api import Runtime  # noqa: E402
from runtime.config import RuntimeConfig  # noqa: E402
from runtime.images import ImageStore  # noqa: E402
from runtime.images.busybox import build_image  # noqa: E402

PREFIX = "bnchkm"
FIELDS = ("MemAvailable", "MemFree", "Slab", "SReclaimable", "SUnreclaim", "KernelStack",
          "PageTables", "Percpu", "AnonPages", "VmallocUsed")  # fmt: skip


def meminfo() -> dict[str, int]:
    """/proc/meminfo in KB."""
    out = {}
    for line in Path("/proc/meminfo").read_text().splitlines():
        key, value = line.split(":")
        out[key] = int(value.split()[0])
    return out


def slabs() -> dict[str, int]:
    """Bytes held by each slab cache (objects times object size)."""
    out = {}
    for line in Path("/proc/slabinfo").read_text().splitlines()[2:]:
        fields = line.split()
        out[fields[0]] = int(fields[2]) * int(fields[3])
    return out


def settled() -> tuple[dict, dict]:
    """meminfo and slabinfo after writing back and dropping the page cache."""
    subprocess.run(["sync"], check=True)
    Path("/proc/sys/vm/drop_caches").write_text("3")
    time.sleep(2)
    return meminfo(), slabs()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=500)
    n = parser.parse_args().n
    base = Path(tempfile.mkdtemp(prefix="berth-kmem-"))
    rt = Runtime(RuntimeConfig(root=base / "root", run_root=base / "run", prefix=PREFIX))
    ids = []
    try:
        build_image(ImageStore(rt.config))
        before, slab_before = settled()
        spec = {"image": "busybox", "command": ["sleep", "100000"],
                "network": {"mode": "none"}, "limits": {"memory": 32 << 20}}  # fmt: skip
        for i in range(n):
            ids.append(rt.run({**spec, "name": f"km{i}"})["id"])
        time.sleep(5)
        after, slab_after = settled()
        print(f"{n} idle containers, KB per container:")
        for key in FIELDS:
            grew = after[key] - before[key]
            print(f"  {key:14} {(-grew if key.startswith('Mem') else grew) / n:8.1f}")
        growth = {k: v - slab_before.get(k, 0) for k, v in slab_after.items()}
        print("largest slab caches, KB per container:")
        for name, grew in sorted(growth.items(), key=lambda kv: -kv[1])[:25]:
            print(f"  {name:28} {grew / n / 1024:8.1f}")
    finally:
        for cid in ids:
            try:
                rt.delete(cid, force=True)
            except Exception as err:  # noqa: BLE001 (go on: the rest must go too)
                print(f"could not delete {cid[:12]}: {err}", file=sys.stderr)
        for parent in Path("/sys/fs/cgroup").glob(f"*/{PREFIX}"):
            subprocess.run(["find", str(parent), "-depth", "-type", "d", "-delete"], check=False)
        shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
