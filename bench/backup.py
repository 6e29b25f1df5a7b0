"""Backup and restore of one host's data: Berth's path next to `tar` and `restic` by hand.

Usage: .venv/bin/python bench/backup.py [--containers 100] [--mib 1024] [--change 0.01]

Makes N running busybox containers (each writes a file into its upper layer) and named volumes
holding MIB of incompressible data in 1 MiB files, on a private state root. Then, one after the
other on the same data:

- Berth: `runtime.backup.hostdata.back_up` (what the `backup.host` operation runs: freeze the
  running containers, one `restic backup` of volumes and upper layers, thaw), full, then
  incremental after CHANGE of the volume data was rewritten; then a restore of everything
  (`staged` + `place`, what `backup.restore_host` runs before it re-creates containers).
- restic by hand: `restic backup` of the same directories into a second repository, full and
  incremental, and `restic restore`.
- tar: `tar -cf` of the same directories, full, and an incremental with GNU tar's
  `--listed-incremental`; `tar -xf` to restore.

Prints seconds and bytes, and the ratios incremental/full and Berth/peer. The database dump and
the manifest (milliseconds) are not part of it.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from runtime.api import Runtime  # noqa: E402
from runtime.backup import hostdata  # noqa: E402
from runtime.backup.restic import Repository  # noqa: E402
from runtime.config import RuntimeConfig  # noqa: E402
from runtime.images import ImageStore  # noqa: E402
from runtime.images.busybox import build_image  # noqa: E402
from runtime.spec import ContainerSpec  # noqa: E402

PREFIX = "bnchbk"
VOLUMES = 10
MIB = 1024 * 1024


def du(path: Path) -> int:
    """Bytes of the files under path (or of the file)."""
    if Path(path).is_file():
        return Path(path).stat().st_size
    return sum(p.stat().st_size for p in Path(path).rglob("*") if p.is_file())


def timed(fn):
    """(seconds, result)."""
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def make_site(rt: Runtime, containers: int, mib: int) -> tuple[list[str], list[str]]:
    """Running containers (each with a file in its upper layer) and volumes with mib MiB."""
    ids = []
    for i in range(containers):
        spec = ContainerSpec.from_dict(
            {
                "image": "busybox",
                "name": f"bk{i}",
                "command": ["sh", "-c", f"echo {i} > /marker; exec sleep 100000"],
                "network": {"mode": "none"},
            }
        )
        ids.append(rt.run(spec)["id"])
    names = [f"vol{i}" for i in range(VOLUMES)]
    per_volume = mib // VOLUMES
    for name in names:
        data = Path(rt.config.root) / hostdata.volume_path(name)
        data.mkdir(parents=True, exist_ok=True)
        for j in range(per_volume):
            (data / f"f{j:04d}.bin").write_bytes(secrets.token_bytes(MIB))
    return ids, names


def change(rt: Runtime, names: list[str], fraction: float) -> int:
    """Rewrite `fraction` of the volume files with new bytes; how many MiB."""
    files = sorted(
        p for n in names for p in (Path(rt.config.root) / hostdata.volume_path(n)).glob("*.bin")
    )
    count = max(1, round(len(files) * fraction))
    for p in files[:: max(1, len(files) // count)][:count]:
        p.write_bytes(secrets.token_bytes(MIB))
    return count


def restic_env(repo: Path, password: Path, cache: Path) -> dict:
    """Environment for restic used by hand (the same password file and cache kind)."""
    return dict(
        os.environ,
        RESTIC_REPOSITORY=str(repo),
        RESTIC_PASSWORD_FILE=str(password),
        RESTIC_CACHE_DIR=str(cache),
    )


def run(cmd, **kw):
    """Run a peer's command, failing loudly."""
    subprocess.run(cmd, check=True, capture_output=True, **kw)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--containers", type=int, default=100)
    parser.add_argument("--mib", type=int, default=1024)
    parser.add_argument("--change", type=float, default=0.01)
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("run as root (containers)", file=sys.stderr)
        return 2
    base = Path(tempfile.mkdtemp(prefix="berth-bench-backup-", dir="/var/tmp"))
    cfg = RuntimeConfig(root=base / "root", run_root=base / "run", prefix=PREFIX)
    rt = Runtime(cfg)
    os.environ["BERTH_RESTIC_CACHE"] = str(base / "cache")
    password = base / "password"
    password.write_text(secrets.token_hex(16))
    password.chmod(0o600)
    ids = []
    try:
        build_image(ImageStore(cfg))
        t_site, (ids, names) = timed(lambda: make_site(rt, args.containers, args.mib))
        root = Path(cfg.root)
        paths = [hostdata.volume_path(n) for n in names] + [hostdata.upper_path(c) for c in ids]
        print(
            f"site: {len(ids)} running containers, {len(names)} volumes, "
            f"{du(root / 'volumes') / MIB:.0f} MiB ({t_site:.1f} s to make)"
        )
        results = {}

        # Berth
        repo = Repository(str(base / "berth-repo"), password)
        repo.run("init")
        uppers = {str(i): c for i, c in enumerate(ids)}

        def berth():
            return hostdata.back_up(
                rt, repo, host="bench", set_id="x", volumes=names, uppers=uppers
            )

        results["berth full"], part = timed(berth)
        frozen = max(part["frozen"].values()) if part["frozen"] else 0
        size_full = du(base / "berth-repo")

        # restic by hand and tar, full, on the same data
        henv = restic_env(base / "hand-repo", password, base / "cache")
        run(["restic", "init", "-q"], env=henv)
        results["restic full"], _ = timed(
            lambda: run(["restic", "backup", "-q", *paths], env=henv, cwd=root)
        )
        snar = base / "tar.snar"
        results["tar full"], _ = timed(
            lambda: run(
                ["tar", "-cf", str(base / "full.tar"), f"--listed-incremental={snar}", *paths],
                cwd=root,
            )
        )
        sizes = {"berth": size_full, "restic": du(base / "hand-repo"), "tar": du(base / "full.tar")}

        changed = change(rt, names, args.change)
        results["berth incr"], part2 = timed(berth)
        results["restic incr"], _ = timed(
            lambda: run(["restic", "backup", "-q", *paths], env=henv, cwd=root)
        )
        results["tar incr"], _ = timed(
            lambda: run(
                ["tar", "-cf", str(base / "incr.tar"), f"--listed-incremental={snar}", *paths],
                cwd=root,
            )
        )
        added = {
            "berth": du(base / "berth-repo") - size_full,
            "restic": du(base / "hand-repo") - sizes["restic"],
            "tar": du(base / "incr.tar"),
        }

        # Restores of everything, into empty directories
        rels = paths
        out = base / "out-berth"
        out.mkdir()

        def berth_restore():
            with hostdata.staged(rt, repo, part2["snapshot"], rels) as st:
                for rel in rels:
                    hostdata.place(st / rel, out / rel)

        results["berth restore"], _ = timed(berth_restore)
        results["restic restore"], _ = timed(
            lambda: run(
                ["restic", "restore", "latest", "--target", str(base / "out-restic")], env=henv
            )
        )
        (base / "out-tar").mkdir()
        results["tar restore"], _ = timed(
            lambda: run(["tar", "-xf", str(base / "full.tar"), "-C", str(base / "out-tar")])
        )

        print(f"changed {changed} MiB ({args.change:.0%}); berth froze containers {frozen:.2f} s")
        print(f"{'':16}{'seconds':>10}")
        for key, secs in results.items():
            print(f"{key:16}{secs:10.2f}")
        for tool in ("berth", "restic", "tar"):
            print(
                f"{tool:7} size full {sizes[tool] / MIB:8.1f} MiB, incremental adds "
                f"{added[tool] / MIB:7.1f} MiB"
            )
        for tool in ("berth", "restic", "tar"):
            ratio = results[f"{tool} incr"] / results[f"{tool} full"]
            print(f"{tool:7} incremental / full time: {ratio:.3f}")
        for peer in ("restic", "tar"):
            print(
                f"berth / {peer}: full {results['berth full'] / results[f'{peer} full']:.2f}, "
                f"incremental {results['berth incr'] / results[f'{peer} incr']:.2f}, "
                f"restore {results['berth restore'] / results[f'{peer} restore']:.2f}"
            )
    finally:
        for cid in ids:
            try:
                rt.delete(cid, force=True)
            except Exception as err:  # keep going: everything else must go too
                print(f"delete {cid[:12]}: {err}", file=sys.stderr)
        shutil.rmtree(base, ignore_errors=True)
        _remove_cgroup_parents(Path(cfg.cgroup_root))
    return 0


def _remove_cgroup_parents(cgroup_root: Path) -> None:
    """The runtime's parent cgroup of this bench's prefix, in every hierarchy (empty by now)."""
    for parent in sorted(cgroup_root.glob(f"*/{PREFIX}")) + sorted(cgroup_root.glob(PREFIX)):
        for sub in sorted(parent.glob("**/"), key=lambda p: len(p.parts), reverse=True):
            if sub != parent:
                with contextlib.suppress(OSError):
                    sub.rmdir()
        with contextlib.suppress(OSError):
            parent.rmdir()


if __name__ == "__main__":
    sys.exit(main())
