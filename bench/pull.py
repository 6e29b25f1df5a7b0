"""Pull a multi-layer image from a local docker-registry: Berth next to `skopeo copy`.

Run as root: .venv/bin/python bench/pull.py [--runs 7] [--layers 6] [--layer-mb 4]
It builds an image with Berth (one RUN per layer), pushes it to a private `docker-registry`
on 127.0.0.1, then times, alternately, `berth pull` into an empty store (download, verify,
unpack) and `skopeo copy docker://... dir:` (download and verify only), and prints medians.
"""

import argparse
import contextlib
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from runtime.api import Runtime  # noqa: E402
from runtime.build import Builder  # noqa: E402
from runtime.config import RuntimeConfig  # noqa: E402
from runtime.images import ImageStore  # noqa: E402
from runtime.images.busybox import build_image  # noqa: E402
from runtime.registry import pull, push  # noqa: E402


def free_port() -> int:
    """A free TCP port on loopback."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_registry(workdir: Path) -> tuple[subprocess.Popen, str]:
    """Start docker-registry on 127.0.0.1 with storage in `workdir`."""
    port = free_port()
    config = workdir / "config.yml"
    config.write_text(
        "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n"
        f"  filesystem:\n    rootdirectory: {workdir / 'storage'}\nhttp:\n  addr: 127.0.0.1:{port}\n"
    )
    proc = subprocess.Popen(
        ["docker-registry", "serve", str(config)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    for _ in range(200):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/", timeout=1).read()
            break
        except (urllib.error.URLError, OSError):
            time.sleep(0.05)
    return proc, f"127.0.0.1:{port}"


def make_image(work: Path, host: str, layers: int, layer_mb: int) -> str:
    """Build a `layers`-layer image with Berth and push it; returns its reference."""
    config = RuntimeConfig(root=work / "build-state", run_root=work / "build-run", prefix="bnchp")
    rt = Runtime(config)
    build_image(rt.images)
    ctx = work / "ctx"
    ctx.mkdir()
    steps = "".join(
        # Half random (incompressible), half text: a realistic mix for gzip.
        f"RUN head -c {layer_mb * 512 * 1024} /dev/urandom > /data{i}.bin && "
        f"seq 1 {layer_mb * 60000} > /data{i}.txt\n"
        for i in range(layers)
    )
    (ctx / "Dockerfile").write_text(f'FROM busybox\n{steps}CMD ["ls", "/"]\n')
    ref = f"{host}/bench/layers:1"
    try:
        Builder(rt).build(ctx, tag=ref)
        push(rt.images, ref)
    finally:
        for parent in rt.cgroups._parent_dirs():  # the empty <prefix>/ groups
            with contextlib.suppress(OSError):
                os.rmdir(parent)
    return ref


def time_berth(ref: str, work: Path, n: int) -> tuple[float, float]:
    """(whole pull, download + verify phase): the rest is the store unpacking the layers."""
    root = work / f"berth-{n}"
    store = ImageStore(RuntimeConfig(root=root, run_root=work / f"run-{n}", prefix="bnchp"))
    marks = {}

    def progress(event):
        if event["status"] == "Extracting":
            marks["fetched"] = time.perf_counter()

    start = time.perf_counter()
    pull(store, ref, progress=progress)
    elapsed = time.perf_counter() - start
    shutil.rmtree(root)
    return elapsed, marks["fetched"] - start


def time_skopeo(ref: str, work: Path, n: int) -> float:
    dest = work / f"skopeo-{n}"
    start = time.perf_counter()
    subprocess.run(
        ["skopeo", "copy", "-q", "--src-tls-verify=false", f"docker://{ref}", f"dir:{dest}"],
        check=True, stdout=subprocess.DEVNULL,
    )  # fmt: skip
    elapsed = time.perf_counter() - start
    shutil.rmtree(dest)
    return elapsed


def main() -> int:
    """Run the comparison and print medians and the ratio."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--layers", type=int, default=6)
    parser.add_argument("--layer-mb", type=int, default=4)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="berth-bench-pull-"))
    proc, host = start_registry(work)
    try:
        ref = make_image(work, host, args.layers, args.layer_mb)
        size = sum(f.stat().st_size for f in (work / "storage").rglob("data"))
        berth, fetch, skopeo = [], [], []
        time_berth(ref, work, -1)  # warm the page cache and the imports
        for n in range(args.runs):
            whole, fetched = time_berth(ref, work, n)
            berth.append(whole)
            fetch.append(fetched)
            skopeo.append(time_skopeo(ref, work, n))
        b, s, f = statistics.median(berth), statistics.median(skopeo), statistics.median(fetch)
        print(f"image: {args.layers} layers + base, {size / 1e6:.1f} MB of blobs in the registry")
        print(
            f"berth pull (download, verify, unpack): median {b * 1000:.0f} ms  {[round(x * 1000) for x in berth]}"
        )
        print(
            f"skopeo copy to dir: (download, verify)  median {s * 1000:.0f} ms  {[round(x * 1000) for x in skopeo]}"
        )
        print(f"berth download + verify phase:        median {f * 1000:.0f} ms")
        print(f"ratio berth/skopeo: whole pull {b / s:.2f}, download phase {f / s:.2f}")
    finally:
        os.kill(proc.pid, signal.SIGTERM)
        proc.wait(10)
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
