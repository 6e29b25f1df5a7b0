"""Build the same Dockerfile with and without the layer cache; print medians and the ratio.

Run as root: .venv/bin/python bench/build.py [--runs 5]
Each RUN step runs in a real Berth container (network none) with memory and pids limits.
"""

import argparse
import contextlib
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from runtime.api import Runtime  # noqa: E402
from runtime.build import Builder  # noqa: E402
from runtime.config import RuntimeConfig  # noqa: E402
from runtime.errors import BerthError  # noqa: E402
from runtime.images.busybox import build_image  # noqa: E402

DOCKERFILE = """\
FROM busybox
ARG VERSION=1
ENV APP=/srv/app
WORKDIR /srv/app
COPY src/ ./src/
RUN mkdir -p out && for f in src/*; do wc -c "$f" >> out/sizes.txt; done
RUN seq 1 200000 > out/numbers.txt && rm /bin/vi
COPY config.ini /etc/app.ini
RUN sha256sum out/numbers.txt > out/sum.txt
LABEL org.example.version=$VERSION
EXPOSE 8080
CMD ["cat", "/srv/app/out/sum.txt"]
"""


def main() -> int:
    """Time cold (--no-cache) and warm (cached) builds side by side."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="berth-bench-build-"))
    config = RuntimeConfig(root=work / "state", run_root=work / "run", prefix="bnchb")
    rt = Runtime(config)
    try:
        build_image(rt.images)
        ctx = work / "ctx"
        (ctx / "src").mkdir(parents=True)
        for i in range(20):
            (ctx / "src" / f"file{i}.txt").write_text(f"file {i}\n" * (i * 100 + 1))
        (ctx / "config.ini").write_text("[app]\nmode=bench\n")
        (ctx / "Dockerfile").write_text(DOCKERFILE)
        builder = Builder(rt)
        builder.build(ctx, tag="bench/app:1")  # warm imports and fill the cache
        cold, warm = [], []
        for _ in range(args.runs):
            start = time.perf_counter()
            builder.build(ctx, tag="bench/app:1", no_cache=True)
            cold.append(time.perf_counter() - start)
            start = time.perf_counter()
            result = builder.build(ctx, tag="bench/app:1")
            warm.append(time.perf_counter() - start)
            assert all(step["cached"] for step in result.steps)
        c, w = statistics.median(cold), statistics.median(warm)
        steps = len(result.steps)
        print(f"build of {steps} steps (3 RUN, 2 COPY):")
        print(f"without cache: median {c * 1000:.0f} ms  {[round(x * 1000) for x in cold]}")
        print(f"with cache:    median {w * 1000:.1f} ms  {[round(x * 1000, 1) for x in warm]}")
        print(f"ratio without/with cache: {c / w:.0f}x")
    finally:
        for container in rt.list():
            with contextlib.suppress(BerthError):
                rt.delete(container["id"], force=True)
        for parent in rt.cgroups._parent_dirs():  # the empty <prefix>/ groups
            with contextlib.suppress(OSError):
                os.rmdir(parent)
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
