"""`run --rm` from many shells at once: every container goes, directory and all.

The CLI's own delete (after the foreground container exits) races the shim's post-exit hook
for the container's lock; neither may leave a directory behind (issue 19: one holding only
an empty `lock` file). Both the foreground and the detached (`-d --rm`) forms run here.
"""

import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

pytestmark = pytest.mark.root

RUNS = 200
PARALLEL = 16
REPO = Path(__file__).resolve().parents[2]


def _env(rt) -> dict:
    return dict(
        os.environ,
        BERTH_ROOT=str(rt.config.root),
        BERTH_RUN_ROOT=str(rt.config.run_root),
        BERTH_PREFIX=rt.config.prefix,
        BERTH_CGROUP_ROOT=str(rt.config.cgroup_root),
    )


def _run_rm(env: dict, i: int) -> subprocess.CompletedProcess:
    detach = ["-d"] if i % 2 else []
    return subprocess.run(
        [sys.executable, "-m", "runtime", "run", "--rm", *detach, "--network", "none"]
        + ["--name", f"race{i}", "busybox", "true"],
        env=env,
        capture_output=True,
        timeout=120,
        cwd=REPO,
    )


def _settled(directory: Path, timeout: float = 60.0) -> list[str]:
    """Entries still in `directory` once the detached runs' post-exit hooks are done."""
    deadline = time.monotonic() + timeout
    while True:
        left = sorted(os.listdir(directory))
        left = [n for n in left if not n.startswith(".index.db")]
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.2)


def test_concurrent_run_rm_leaves_no_directory(rt):
    env = _env(rt)
    with ThreadPoolExecutor(PARALLEL) as pool:
        results = list(pool.map(lambda i: _run_rm(env, i), range(RUNS)))
    failed = [r.stderr.decode() for r in results if r.returncode != 0]
    assert not failed, failed[:3]
    assert _settled(rt.config.containers_dir) == []
    assert rt.list() == []
    assert not any(n.startswith("race") for n in os.listdir(rt.store.names_dir))
    run_left = os.listdir(rt.config.run_containers_dir)
    assert run_left == [], run_left
    # Every process deletes its removals' files before it exits (non-daemon threads); a
    # detached run's post-exit hook may still be at it when containers/ is already empty.
    assert _settled(rt.store.trash_dir) == []
