"""Start latency and `run /bin/true`: Berth vs crun vs runc, same busybox rootfs and limits, one run.

Usage: .venv/bin/python bench/runtime_start.py [-n 20] [--helper-row]
Prints medians (ms) and ratios. Berth is measured through its API in-process (what the
host agent calls) and through its command line (`python -m runtime run --rm`); the row
"berth" is the default (a user namespace of its own), "berth nouserns" the same with
`--userns host`, side by side in one run.

"start CPU" is the CPU time a start costs, every process counted (wall times on a loaded
machine say little): this process and all it forks run in a cpuacct group of their own, and
the container's own group is read right after the start (its init's set-up ran there).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import contextlib

from runtime.api import Runtime  # noqa: E402
from runtime.config import RuntimeConfig  # noqa: E402
from runtime.images import ImageStore  # noqa: E402
from runtime.images.busybox import build_image, build_rootfs_tar  # noqa: E402
from runtime.oci import write_bundle  # noqa: E402
from runtime.spec import ContainerSpec  # noqa: E402

LIMITS = {"memory": "64m", "cpu_quota": 50000, "cpu_period": 100000, "pids": 100}
PREFIX = "bnchst"


def spec(cmd: list[str], userns: bool = True) -> ContainerSpec:
    """The benchmark's container spec running `cmd`: in its own user namespace (the default
    since issue 14) or, with userns=False, in the host's (`--userns host`)."""
    data = {"image": "busybox", "command": cmd, "network": {"mode": "none"}, "limits": LIMITS}
    data["namespaces"] = {"user": "private" if userns else "host"}
    return ContainerSpec.from_dict(data)


CPUACCT = Path("/sys/fs/cgroup/cpuacct")


class CpuMeter:
    """CPU time of this process tree (a cpuacct group of its own) plus a container's group."""

    def __init__(self, name: str):
        self.dir = CPUACCT / name
        self.home = None

    def __enter__(self):
        if not (CPUACCT / "cpuacct.usage").exists():
            return self  # no v1 cpuacct here: CPU columns stay empty
        self.home = CPUACCT / _cgroup_of("cpuacct").lstrip("/")
        self.dir.mkdir(exist_ok=True)
        (self.dir / "cgroup.procs").write_text("0")
        return self

    def __exit__(self, *exc):
        if self.home is not None:
            (self.home / "cgroup.procs").write_text("0")
            for _ in range(50):  # shims of deleted containers may still be exiting
                try:
                    self.dir.rmdir()
                    break
                except OSError:
                    time.sleep(0.1)

    def usage(self) -> int:
        """Nanoseconds of CPU used so far by this tree (0 without cpuacct)."""
        return int((self.dir / "cpuacct.usage").read_text()) if self.home else 0


def _cgroup_of(controller: str) -> str:
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _, names, path = line.split(":", 2)
        if controller in names.split(","):
            return path
    return "/"


def group_cpu_ms(path: Path) -> float:
    """CPU milliseconds a cgroup's processes used (its cpuacct.usage; 0 if gone)."""
    try:
        return int((path / "cpuacct.usage").read_text()) / 1e6
    except OSError:
        return 0.0


@contextlib.contextmanager
def helper_path():
    """Starts made as before clone_init: runtime.container.userns.prepare not deferred."""
    from runtime.container import userns

    prepare = userns.prepare

    def eager(*args, **kwargs):
        """prepare() with the namespace made at once (a throwaway child)."""
        return prepare(*args, **{**kwargs, "deferred": False})

    userns.prepare = eager
    try:
        yield
    finally:
        userns.prepare = prepare


def timed(fn) -> float:
    """Milliseconds `fn` took."""
    t0 = time.perf_counter()
    fn()
    return (time.perf_counter() - t0) * 1000


def median(xs: list[float]) -> float:
    """Median, NaN for no samples."""
    return statistics.median(xs) if xs else float("nan")


def settle() -> None:
    """Let the removals before a sample finish: Berth deletes a removed container's files in a
    thread after `delete` answers, and a sample (of any tool) must not share the CPUs with the
    files of the bench's earlier, untimed deletes."""
    from runtime.container.store import ContainerStore

    ContainerStore.wait_cleanups(10)


def bench_berth(rt: Runtime, n: int, userns: bool = True, meter: CpuMeter | None = None) -> dict:
    """Berth through its API: start latency (wall and CPU) and run of /bin/true."""
    start, true_run, two_step, cpu = [], [], [], []
    for _ in range(n):
        holder = {}
        settle()
        before = meter.usage() if meter else 0
        start.append(
            timed(lambda holder=holder: holder.update(rt.run(spec(["sleep", "1000"], userns))))
        )
        if meter is not None:
            group = CPUACCT / rt.cgroups.prefix / holder["id"]
            cpu.append((meter.usage() - before) / 1e6 + group_cpu_ms(group))
        rt.delete(holder["id"], force=True)
        settle()
        # The contract's two verbs, as runc's create + start.
        two_step.append(
            timed(
                lambda holder=holder: holder.update(
                    rt.start(rt.create(spec(["sleep", "1000"], userns))["id"])
                )
            )
        )
        rt.delete(holder["id"], force=True)

        def run_true():
            """run, wait and delete one /bin/true container."""
            st = rt.run(spec(["/bin/true"], userns))
            rt.wait(st["id"])
            rt.delete(st["id"])

        settle()
        true_run.append(timed(run_true))
    return {"start": start, "run_true": true_run, "create_start": two_step, "cpu": cpu}


def bench_berth_cli(cfg: RuntimeConfig, n: int) -> list[float]:
    """Berth through `python -m runtime run --rm`."""
    env = dict(
        os.environ,
        BERTH_ROOT=str(cfg.root),
        BERTH_RUN_ROOT=str(cfg.run_root),
        BERTH_PREFIX=cfg.prefix,
    )
    cmd = [
        sys.executable,
        "-m",
        "runtime",
        "run",
        "--rm",
        "--network",
        "none",
        "-m",
        "64m",
        "--cpu-quota",
        "50000",
        "--cpu-period",
        "100000",
        "--pids-limit",
        "100",
        "busybox",
        "/bin/true",
    ]
    cwd = str(Path(__file__).resolve().parents[1])
    return [timed(lambda: subprocess.run(cmd, env=env, cwd=cwd, check=True)) for _ in range(n)]


def bench_oci(
    tool: str, bundle: Path, state: Path, n: int, meter: CpuMeter | None = None, first: int = 0
) -> dict:
    """`run` of /bin/true and `create`+`start` of sleep, by runc or crun."""

    def command(*args: str) -> list[str]:
        """The tool's command line (crun inside a private mount namespace)."""
        base = [tool, "--root", str(state), *args]
        if tool == "crun":  # crun refuses this host's hybrid cgroups unless the v2 mount is hidden
            return [
                "unshare",
                "-m",
                "--propagation",
                "private",
                "sh",
                "-c",
                "umount /sys/fs/cgroup/unified 2>/dev/null; exec " + " ".join(base),
            ]
        return base

    true_bundle, sleep_bundle = bundle / "true", bundle / "sleep"
    run_true, start, cpu = [], [], []
    for i in range(first, first + n):
        cid = f"{PREFIX}{tool}{i}"
        settle()
        run_true.append(
            timed(
                lambda cid=cid: subprocess.run(
                    command("run", "--bundle", str(true_bundle), cid),
                    check=True,
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                )
            )
        )
        sid = cid + "s"
        settle()
        before = meter.usage() if meter else 0
        start.append(
            timed(
                lambda sid=sid: (
                    subprocess.run(
                        command("create", "--bundle", str(sleep_bundle), sid),
                        check=True,
                        stdin=subprocess.DEVNULL,
                        stdout=subprocess.DEVNULL,
                    ),
                    subprocess.run(command("start", sid), check=True),
                )
            )
        )
        if meter is not None:
            group = CPUACCT / f"{PREFIX}oci" / "sleep"
            cpu.append((meter.usage() - before) / 1e6 + group_cpu_ms(group))
        subprocess.run(command("delete", "-f", sid), check=False, stderr=subprocess.DEVNULL)
    return {"start": start, "run_true": run_true, "cpu": cpu}


def main() -> int:
    """Run every tool in one go and print medians and ratios."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=20, help="iterations per tool")
    parser.add_argument("--no-userns-host", action="store_true", help="skip the --userns host row")
    parser.add_argument("--no-cli", action="store_true", help="skip the CLI row (slow when busy)")
    parser.add_argument(
        "--helper-row",
        action="store_true",
        help="add 'berth helper': the user namespace made the way it was before clone_init "
        "(a throwaway child in the caller, a helper joins it; still the path of joiners)",
    )
    args = parser.parse_args()
    print(f"load average at the start {os.getloadavg()[0]:.2f}")
    base = Path(tempfile.mkdtemp(prefix="berth-bench-"))
    cfg = RuntimeConfig(root=base / "root", run_root=base / "run", prefix=PREFIX)
    rt = Runtime(cfg)
    try:
        build_image(ImageStore(cfg))
        tar = base / "rootfs.tar"
        build_rootfs_tar(str(tar))
        rootfs = (base / "rootfs").resolve()
        rootfs.mkdir()
        with tarfile.open(tar) as t:
            t.extractall(rootfs)
        for name, cmd in (("true", ["/bin/true"]), ("sleep", ["sleep", "1000"])):
            write_bundle(
                base / "bundle" / name,
                spec(cmd),
                str(rootfs),
                hostname="bench",
                cgroups_path=f"/{PREFIX}oci/{name}",
                default_pids=100,
            )
        rt.run(spec(["/bin/true"]))  # warm caches (imports, page cache)
        for st in rt.list():
            rt.delete(st["id"], force=True)
        # The default (a user namespace), --userns host and the peers, one sample of each in
        # turn, so a busy machine weighs on all alike.
        rows = [("berth", True)] + ([] if args.no_userns_host else [("berth nouserns", False)])
        peers = [tool for tool in ("crun", "runc") if shutil.which(tool)]
        results: dict[str, dict[str, list]] = {}
        with CpuMeter(f"{PREFIX}bench") as meter:
            for i in range(args.n):
                samples = {name: bench_berth(rt, 1, userns, meter) for name, userns in rows}
                if args.helper_row:
                    with helper_path():
                        samples["berth helper"] = bench_berth(rt, 1, True, meter)
                for tool in peers:
                    samples[tool] = bench_oci(
                        tool, base / "bundle", base / f"{tool}-state", 1, meter, first=i
                    )
                for name, sample in samples.items():
                    for key, values in sample.items():
                        results.setdefault(name, {}).setdefault(key, []).extend(values)
            for st in rt.list():
                rt.delete(st["id"], force=True)
        cli = [] if args.no_cli else bench_berth_cli(cfg, max(5, args.n // 2))
        print(f"{'':14}{'start (ms)':>12}{'run /bin/true (ms)':>20}{'start CPU (ms)':>16}")
        for name, r in results.items():
            print(
                f"{name:14}{median(r['start']):12.1f}{median(r['run_true']):20.1f}"
                f"{median(r['cpu']):16.1f}"
            )
        two = median(results["berth"]["create_start"])
        print(f"{'berth c+s':14}{two:12.1f}   (create() then start(), the contract's two verbs)")
        print(
            f"{'berth CLI':14}{'':12}{median(cli):20.1f}   (python -m runtime run --rm, includes interpreter start)"
        )
        for mine in ("berth", "berth nouserns", "berth helper"):
            for peer in ("crun", "runc"):
                if peer in results and mine in results:
                    b, p = results[mine], results[peer]
                    print(
                        f"{mine}/{peer}: start {median(b['start']) / median(p['start']):.2f}x, "
                        f"run /bin/true {median(b['run_true']) / median(p['run_true']):.2f}x, "
                        f"start CPU {median(b['cpu']) / median(p['cpu']):.2f}x"
                    )
        print(f"load average at the end {os.getloadavg()[0]:.2f}")
    finally:
        clean_up(rt, cfg, base, PREFIX)
    return 0


def clean_up(rt: Runtime, cfg: RuntimeConfig, base: Path, prefix: str) -> None:
    """Delete the bench's containers, the cgroups made under `prefix` and its state."""
    for st in rt.list():
        rt.delete(st["id"], force=True)
    rt.store.wait_cleanups(10)
    # runc and crun made /<prefix>oci/* in every hierarchy (named ones included).
    for hierarchy in Path(cfg.cgroup_root).iterdir():
        for sub in ("oci/true", "oci/sleep", "oci", ""):
            with contextlib.suppress(OSError):
                os.rmdir(hierarchy / f"{prefix}{sub}")
    shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
