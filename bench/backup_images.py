"""Backup of a host's images (`manage.py backup --images blobs`): Berth's path next to tar.

Usage: .venv/bin/python bench/backup_images.py [--images 8] [--mib 32]

Fills a private image store with IMAGES images of one MIB layer of incompressible data each
(plus busybox). Then, one after the other:

- Berth: `runtime.backup.hostdata.back_up_images` (what the `backup.host` operation runs with
  images "blobs": the store as one OCI archive, snapshotted by restic), full, then again after
  one more image was added (restic stores only the new blobs: the archive keeps every blob's
  bytes), then `restore_images` into an empty store (what `backup.restore_host` runs first).
- tar by hand: `tar -cf` of the store's blobs and index, full, and GNU tar's
  `--listed-incremental` after the same added image; `tar -xf` to restore (files only: the
  layers are not unpacked, the images not usable until imported).

Prints seconds and bytes, and the ratios incremental/full and Berth/tar. Needs root only for
nothing in particular; runs as any user who can write /var/tmp.
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from runtime.api import Runtime  # noqa: E402
from runtime.backup import hostdata  # noqa: E402
from runtime.backup.restic import Repository  # noqa: E402
from runtime.config import RuntimeConfig  # noqa: E402
from runtime.images import ImageStore  # noqa: E402
from runtime.images.busybox import build_image  # noqa: E402
from tests.runtime.images.image_archives import docker_archive, layer  # noqa: E402

MIB = 1024 * 1024


def du(path: Path) -> int:
    """Bytes of the files under path (or of the file)."""
    path = Path(path)
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def timed(fn):
    """(seconds, result)."""
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def add_image(store: ImageStore, scratch: Path, n: int, mib: int) -> None:
    """One image of one layer holding `mib` MiB of random bytes, tagged bench/img:<n>."""
    path = scratch / f"img{n}.tar"
    data = [("data/", None), ("data/blob.bin", secrets.token_bytes(mib * MIB))]
    docker_archive(path, [([layer(data)], [f"bench/img:{n}"], {"Cmd": ["sh"]})])
    store.import_archive(path)
    path.unlink()


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=8)
    parser.add_argument("--mib", type=int, default=32)
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="berth-bench-bkimg-", dir="/var/tmp"))
    try:
        cfg = RuntimeConfig(root=base / "root", run_root=base / "run", prefix="bnchbi")
        rt = Runtime(cfg)
        os.environ["BERTH_RESTIC_CACHE"] = str(base / "cache")
        password = base / "password"
        password.write_text(secrets.token_hex(16))
        password.chmod(0o600)
        build_image(rt.images)
        for n in range(args.images):
            add_image(rt.images, base, n, args.mib)
        images_dir = Path(cfg.root) / "images"
        store_bytes = du(images_dir / "blobs")
        print(f"store: {len(rt.images.list())} images, blobs {store_bytes / MIB:.0f} MiB")
        repo = Repository(str(base / "repo"), password)
        repo.run("init")
        results, sizes = {}, {}

        def berth():
            return hostdata.back_up_images(rt, repo, host="bench", set_id="x")

        results["berth full"], first = timed(berth)
        sizes["berth full"] = du(base / "repo")
        snar = base / "tar.snar"
        rels = ["images/blobs", "images/index.json"]

        def tar(name):
            cmd = ["tar", "-cf", str(base / name), f"--listed-incremental={snar}", *rels]
            subprocess.run(cmd, cwd=cfg.root, check=True)

        results["tar full"], _ = timed(lambda: tar("full.tar"))
        sizes["tar full"] = du(base / "full.tar")

        add_image(rt.images, base, args.images, args.mib)
        results["berth incr"], second = timed(berth)
        sizes["berth incr"] = du(base / "repo") - sizes["berth full"]
        results["tar incr"], _ = timed(lambda: tar("incr.tar"))
        sizes["tar incr"] = du(base / "incr.tar")

        fresh = Runtime(RuntimeConfig(root=base / "root2", run_root=base / "run2", prefix="bnchbj"))
        results["berth restore"], loaded = timed(
            lambda: hostdata.restore_images(fresh, repo, second)
        )
        (base / "out-tar").mkdir()
        results["tar restore"], _ = timed(
            lambda: subprocess.run(
                ["tar", "-xf", str(base / "full.tar"), "-C", str(base / "out-tar")], check=True
            )
        )
        assert len(loaded) == len(rt.images.list()), (len(loaded), len(rt.images.list()))
        print(f"{'':16}{'seconds':>10}{'MiB':>10}")
        for key, secs in results.items():
            size = sizes.get(key)
            print(f"{key:16}{secs:10.2f}{'' if size is None else f'{size / MIB:10.1f}'}")
        for tool in ("berth", "tar"):
            ratio = results[f"{tool} incr"] / results[f"{tool} full"]
            print(f"{tool:6} incremental / full: time {ratio:.3f}, "
                  f"size {sizes[f'{tool} incr'] / sizes[f'{tool} full']:.3f}")  # fmt: skip
        print(
            f"berth / tar: full {results['berth full'] / results['tar full']:.2f}, "
            f"incremental {results['berth incr'] / results['tar incr']:.2f}, "
            f"restore {results['berth restore'] / results['tar restore']:.2f} "
            f"(berth's restore also unpacks every layer: the images are usable)"
        )
        print(f"snapshots: full {first['snapshot']}, incremental {second['snapshot']}")
    finally:
        shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
