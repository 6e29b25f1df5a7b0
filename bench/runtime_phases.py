"""Where a run of /bin/true spends its time: run, wait and delete phase by phase, beside runc.

Usage: .venv/bin/python bench/runtime_phases.py [-n 20] [--userns-host] [--after-sleep]
                                                 [--timeline]

Times each of the caller's steps (`time.perf_counter_ns` around the runtime's functions,
wrapped for this process only) and reads the caller's CPU and run-queue wait from
/proc/self/schedstat; one `runc run` of the same container follows each round. With
--after-sleep each round first makes and force-deletes two `sleep` containers, as
bench/runtime_start.py does between its samples. Prints medians in milliseconds.

--timeline: instead, marks (`time.monotonic_ns`) on entering and leaving the steps of every
process of the run (the caller, the detaching child, the shim-to-be and the init: each is a
fork of this one, so the wrapped functions follow them until they exec), printed as the
median time of each mark since the call, in order: where the critical path goes.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import functools
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import runtime_start as rs  # noqa: E402

from runtime import api  # noqa: E402
from runtime.config import RuntimeConfig  # noqa: E402
from runtime.container import launch as launch_mod  # noqa: E402
from runtime.container import store as store_mod  # noqa: E402
from runtime.images import ImageStore  # noqa: E402
from runtime.images.busybox import build_image, build_rootfs_tar  # noqa: E402
from runtime.oci import write_bundle  # noqa: E402

PREFIX = "bnchph"
_spent: dict[str, int] = collections.defaultdict(int)


def _wrap(owner, name: str, label: str) -> None:
    """Add the time spent in owner.name to _spent[label] (this process only)."""
    inner = getattr(owner, name)

    @functools.wraps(inner)
    def timed(*args, **kwargs):
        t0 = time.perf_counter_ns()
        try:
            return inner(*args, **kwargs)
        finally:
            _spent[label] += time.perf_counter_ns() - t0

    setattr(owner, name, timed)


def instrument(rt) -> None:
    """Wrap the steps of run, wait and delete worth seeing."""
    for name in ("_prepare", "_settle_userns", "_claim_name", "_observe", "state", "_teardown"):
        _wrap(api.Runtime, name, name)
    for name in ("_parents_outside", "_detach_network"):
        _wrap(api.Runtime, name, name)
    for name in ("publish_record", "write_state", "write_record", "remove"):
        _wrap(store_mod.ContainerStore, name, f"store.{name}")
    for name in ("etc_files", "_child_plan", "isolated_network", "record_shim", "wait_gone"):
        _wrap(launch_mod, name, f"launch.{name}")
    _wrap(launch_mod.Handshake, "run", "launch.handshake")
    for name in ("create", "remove_if_empty", "destroy"):
        _wrap(type(rt.cgroups), name, f"cgroups.{name}")


_MARKS = "/dev/shm/berth-phases-marks"
_marks_fd = -1


def _mark(label: str) -> None:
    line = f"{label} {time.monotonic_ns()} {os.getpid()}\n".encode()
    try:
        os.write(_marks_fd, line)
    except OSError:  # closed by the process (the detaching child keeps few): open it again
        with contextlib.suppress(OSError):  # not reachable from the init's new root
            fd = os.open(_MARKS, os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC)
            os.write(fd, line)
            os.close(fd)


def _mark_around(owner, name: str, label: str) -> None:
    """Mark entering (>) and leaving (<) owner.name, in whichever process calls it."""
    inner = getattr(owner, name)

    @functools.wraps(inner)
    def marked(*args, **kwargs):
        _mark(label + ">")
        try:
            return inner(*args, **kwargs)
        finally:
            _mark(label + "<")

    setattr(owner, name, marked)


def instrument_timeline(rt) -> None:
    """Marks around the steps of every process a run makes (see --timeline)."""
    from runtime.container import hardening, init, rootfs, userns

    global _marks_fd
    _marks_fd = os.open(_MARKS, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND, 0o600)
    for name in ("_prepare", "_settle_userns", "_claim_name"):
        _mark_around(api.Runtime, name, name)
    _mark_around(type(rt.cgroups), "create", "cgroups.create")
    for name in ("etc_files", "_child_plan", "_ready", "_fork_init", "join_cgroup", "exec_shim"):
        _mark_around(launch_mod, name, name)
    _mark_around(launch_mod.Handshake, "next", "handshake message")
    for name in ("pin_trees", "_clone", "_map_child", "_cloned", "become_root"):
        _mark_around(userns, name, f"userns.{name}")
    for name in ("_namespaces", "_joined"):
        _mark_around(init, name, f"init.{name}")
    _mark_around(rootfs, "setup_rootfs", "rootfs.setup_rootfs")
    _mark_around(hardening, "drop_privileges", "hardening.drop_privileges")
    _mark_around(hardening, "close_inherited_fds", "exec follows: close_inherited_fds")


def timeline(runs: list[str]) -> None:
    """Print each mark's median time since the call, processes named by the marks they make."""
    spent: dict[str, list[float]] = collections.defaultdict(list)
    for text in runs:
        rows = [line.rsplit(" ", 2) for line in text.splitlines() if line]
        t0, seen = int(rows[0][1]), collections.Counter()
        roles = {rows[0][2]: "caller"}
        for label, _, pid in rows:
            if label.startswith(("init.", "userns._cloned", "rootfs.", "hardening.", "exec ")):
                roles.setdefault(pid, "init")
            elif label == "_fork_init>":
                roles.setdefault(pid, "shim-to-be")
        for label, t, pid in rows:
            role = roles.get(pid, "detaching child")
            key = f"{role}: {label}"
            seen[key] += 1
            if seen[key] == 1:
                spent[key].append((int(t) - t0) / 1e6)
    for key in sorted(spent, key=lambda k: statistics.median(spent[k])):
        print(f"{key:58}{statistics.median(spent[key]):8.2f} ms  (n={len(spent[key])})")


def schedstat() -> tuple[int, int]:
    """(ns on CPU, ns waiting on a run queue) of this thread so far."""
    with open("/proc/thread-self/schedstat") as f:
        cpu, wait, _ = f.read().split()
    return int(cpu), int(wait)


def run_timeline(rt, n: int, userns: bool) -> int:
    """--timeline: n runs of /bin/true (run, wait, delete), marks read after each."""
    instrument_timeline(rt)
    rt.delete(rt.run(rs.spec(["/bin/true"], userns))["id"], force=True)  # warm caches
    runs = []
    try:
        for _ in range(n):
            rs.settle()
            os.ftruncate(_marks_fd, 0)
            _mark("run>")
            cid = rt.run(rs.spec(["/bin/true"], userns))["id"]
            _mark("run<")
            rt.wait(cid)
            _mark("wait<")
            rt.delete(cid)
            _mark("delete<")
            with open(_MARKS) as f:
                runs.append(f.read())
    finally:
        os.close(_marks_fd)
        os.unlink(_MARKS)
    timeline(runs)
    load = os.getloadavg()
    print(f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    return 0


def main() -> int:
    """Run the rounds and print each phase's median."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=20, help="rounds")
    parser.add_argument("--userns-host", action="store_true", help="berth with --userns host")
    parser.add_argument("--after-sleep", action="store_true", help="as runtime_start.py's rounds")
    parser.add_argument("--timeline", action="store_true", help="marks in every process")
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="berth-phases-"))
    cfg = RuntimeConfig(root=base / "root", run_root=base / "run", prefix=PREFIX)
    rt = api.Runtime(cfg)
    userns = not args.userns_host
    samples: dict[str, list[float]] = collections.defaultdict(list)
    try:
        build_image(ImageStore(cfg))
        build_rootfs_tar(str(base / "rootfs.tar"))
        rootfs = base / "rootfs"
        rootfs.mkdir()
        with tarfile.open(base / "rootfs.tar") as t:
            t.extractall(rootfs)
        bundle = base / "bundle"
        write_bundle(
            bundle,
            rs.spec(["/bin/true"]),
            str(rootfs),
            hostname="bench",
            cgroups_path=f"/{PREFIX}oci/true",
            default_pids=100,
        )
        if args.timeline:
            return run_timeline(rt, args.n, userns)
        instrument(rt)
        rt.delete(rt.run(rs.spec(["/bin/true"], userns))["id"], force=True)  # warm caches
        for i in range(args.n):
            if args.after_sleep:
                for make in (rt.run, lambda s: rt.start(rt.create(s)["id"])):
                    rt.delete(make(rs.spec(["sleep", "1000"], userns))["id"], force=True)
            for verb in ("run", "wait", "delete"):
                _spent.clear()
                s0, t0 = schedstat(), time.perf_counter_ns()
                if verb == "run":
                    cid = rt.run(rs.spec(["/bin/true"], userns))["id"]
                elif verb == "wait":
                    rt.wait(cid)
                else:
                    rt.delete(cid)
                t1, s1 = time.perf_counter_ns(), schedstat()
                samples[f"{verb} (wall)"].append((t1 - t0) / 1e6)
                samples[f"{verb}: caller CPU"].append((s1[0] - s0[0]) / 1e6)
                samples[f"{verb}: caller run-queue wait"].append((s1[1] - s0[1]) / 1e6)
                for label, ns in _spent.items():
                    samples[f"{verb}: {label}"].append(ns / 1e6)
            t0 = time.perf_counter_ns()
            subprocess.run(
                ["runc", "--root", str(base / "runc"), "run", "--bundle", str(bundle), f"ph{i}"],
                check=True,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
            )
            samples["runc run (wall)"].append((time.perf_counter_ns() - t0) / 1e6)
        for label in sorted(samples):
            values = samples[label]
            print(f"{label:40}{statistics.median(values):9.2f} ms  (n={len(values)})")
        load = os.getloadavg()
        print(f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    finally:
        rs.clean_up(rt, cfg, base, PREFIX)
    return 0


if __name__ == "__main__":
    sys.exit(main())
