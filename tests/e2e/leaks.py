"""What a Berth installation with a runtime prefix holds on this host, for leak checks.

No Django, no runtime: the fault suite (tests/e2e/test_faults_e2e.py) and the churn soak
(bench/churn_soak.py) both compare these sets with a baseline taken with no container.
"""

import contextlib
import subprocess
from pathlib import Path


def kernel_objects(prefix: str, base: Path, root: Path, run_root: Path) -> dict[str, set]:
    """veths, nft rules, mounts, cgroups, netns, state files and processes of a prefix."""
    objects: dict[str, set] = {}
    links = subprocess.run(
        ["ip", "-o", "link", "show", "type", "veth"], capture_output=True, text=True
    ).stdout
    objects["veth"] = {
        name
        for line in links.splitlines()
        if (name := line.split(":")[1].strip().split("@")[0]).startswith(prefix)
    }
    rules = set()
    for family in ("inet", "ip", "ip6"):
        out = subprocess.run(
            ["nft", "list", "table", family, prefix], capture_output=True, text=True
        ).stdout
        rules |= {f"{family} {line.strip()}" for line in out.splitlines() if line.strip()}
    objects["nft"] = rules
    objects["mount"] = {
        line.split()[4]
        for line in Path("/proc/self/mountinfo").read_text().splitlines()
        if line.split()[4].startswith(str(base) + "/")
    }
    cgroups = set()
    for top in [*Path("/sys/fs/cgroup").glob(prefix), *Path("/sys/fs/cgroup").glob(f"*/{prefix}")]:
        cgroups |= {str(p) for p in top.rglob("*") if p.is_dir()}
    objects["cgroup"] = cgroups
    netns = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    objects["netns"] = {line.split()[0] for line in netns.splitlines() if prefix in line}
    objects["state"] = {
        str(p) for d in (root / "containers", run_root / "containers") if d.is_dir()
        for p in d.iterdir() if not p.name.startswith(".")  # the index, not a container
    }  # fmt: skip
    procs = set()
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            cgroup = (proc / "cgroup").read_text()
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            if f"/{prefix}/" in cgroup or str(root) in cmdline or str(run_root) in cmdline:
                procs.add(f"{proc.name} {cmdline[:80]}")
    objects["process"] = procs
    return objects
