"""Fixtures for the cgroup driver tests: real v1/v2 groups under a throwaway prefix, fake v2 trees."""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import subprocess
from pathlib import Path

import pytest

from runtime.cgroups import driver_for
from runtime.cgroups.base import remove_tree
from runtime.config import RuntimeConfig

UNIFIED = Path("/sys/fs/cgroup/unified")


def _prefix() -> str:
    return "tcg" + secrets.token_hex(2)


def _config(tmp_path: Path, **kwargs) -> RuntimeConfig:
    return RuntimeConfig(
        root=tmp_path / "state", run_root=tmp_path / "run", prefix=_prefix(), **kwargs
    )


def _cleanup(driver) -> None:
    """Destroy every group under the test prefix (killing what runs there), then the parents."""
    for cid in driver.list():
        with contextlib.suppress(Exception):
            driver.destroy(cid)
    for parent in driver._parent_dirs():
        remove_tree(parent)


def _needs_root():
    if os.geteuid() != 0:
        pytest.skip("needs root")


@pytest.fixture
def v1(tmp_path):
    """A V1Driver on this host's real hierarchies under a random `tcg` prefix."""
    _needs_root()
    config = _config(tmp_path)
    driver = driver_for(config)
    if driver.version != 1:
        pytest.skip("the host is not cgroup v1")
    yield driver
    _cleanup(driver)


@pytest.fixture
def unified(tmp_path):
    """A V2Driver on the host's real cgroup2 mount (hybrid hosts: it holds no controllers)."""
    _needs_root()
    if not (UNIFIED / "cgroup.controllers").exists():
        pytest.skip("no cgroup2 mount at /sys/fs/cgroup/unified")
    driver = driver_for(_config(tmp_path, cgroup_root=UNIFIED))
    yield driver
    _cleanup(driver)


@pytest.fixture
def procs():
    """Start processes straight into a container's groups; all are killed at teardown."""
    started: list[subprocess.Popen] = []

    def spawn(driver, cid, argv, **kwargs) -> subprocess.Popen:
        files = driver.procs_files(cid)

        def join():
            # Joins before exec, as the runtime does, so limits hold from the first instruction.
            for path in files:
                fd = os.open(path, os.O_WRONLY)
                try:
                    os.write(fd, b"0")
                finally:
                    os.close(fd)

        kwargs.setdefault("stdout", subprocess.PIPE)
        kwargs.setdefault("stderr", subprocess.PIPE)
        proc = subprocess.Popen(argv, preexec_fn=join, **kwargs)
        started.append(proc)
        return proc

    yield spawn
    for proc in started:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
        with contextlib.suppress(Exception):
            proc.communicate(timeout=10)


# A fake cgroup v2 tree: regular files standing in for cgroupfs.
FAKE_CONTROLLERS = "cpuset cpu io memory hugetlb pids rdma misc"
_CONTROLLER_FILES = {
    "memory": ("memory.max", "memory.swap.max", "memory.current", "memory.peak", "memory.events"),
    "cpu": ("cpu.weight", "cpu.max"),
    "cpuset": ("cpuset.cpus", "cpuset.mems"),
    "pids": ("pids.max", "pids.current"),
    "io": ("io.weight", "io.max", "io.stat"),
}
_CORE_FILES = {
    "cgroup.procs": "",
    "cgroup.subtree_control": "",
    "cgroup.events": "populated 0\nfrozen 0\n",
    "cgroup.freeze": "0",
    "cgroup.kill": "",
    "cgroup.type": "domain",
    "cpu.stat": "usage_usec 0\n",
}


class FakeKernel:
    """What the kernel would do on mkdir/rmdir/BPF attach in a cgroup v2 tree, with files."""

    def __init__(self, root: Path):
        self.root = root
        self.attached: dict[str, list] = {}
        root.mkdir()
        (root / "cgroup.controllers").write_text(FAKE_CONTROLLERS + "\n")
        (root / "cgroup.subtree_control").write_text("")
        (root / "cgroup.procs").write_text("")

    def mkdir(self, path: str) -> None:
        os.mkdir(path)
        parent = Path(path).parent
        # A child is offered what its parent enabled for its children.
        offered = [c.lstrip("+") for c in (parent / "cgroup.subtree_control").read_text().split()]
        (Path(path) / "cgroup.controllers").write_text(" ".join(offered))
        for name, content in _CORE_FILES.items():
            (Path(path) / name).write_text(content)
        for controller in offered:
            for name in _CONTROLLER_FILES.get(controller, ()):
                (Path(path) / name).write_text("")

    def rmdir(self, path: str) -> None:
        if not os.path.isdir(path):
            raise FileNotFoundError(path)
        shutil.rmtree(path)

    def attach(self, group: str, rules) -> None:
        self.attached[group] = list(rules)


@pytest.fixture
def fake_v2(tmp_path):
    """A V2Driver on a fake tree whose kernel-facing hooks are the FakeKernel's."""
    kernel = FakeKernel(tmp_path / "cgroup")
    driver = driver_for(_config(tmp_path, cgroup_root=kernel.root))
    driver._mkdir = kernel.mkdir
    driver._rmdir = kernel.rmdir
    driver._attach_devices = kernel.attach
    driver.kernel = kernel
    return driver
