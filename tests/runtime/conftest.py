"""Fixtures for runtime tests: a private RuntimeConfig (prefix, roots) and a Runtime that cleans up.

One busybox image is imported per session under the session's root; every container a test
creates is force-deleted at teardown, and the session removes its cgroup parent, network
state and roots, even when tests fail.
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import string
import tempfile
from pathlib import Path

import pytest

from runtime.config import RuntimeConfig


def _prefix() -> str:
    return "t" + "".join(random.choices(string.ascii_lowercase + string.digits, k=5))


@pytest.fixture(scope="session")
def berth_config():
    """A RuntimeConfig with its own prefix and temporary root/run_root, removed at the end."""
    if os.geteuid() != 0:
        pytest.skip("runtime tests need root")
    base = Path(tempfile.mkdtemp(prefix="berth-rt-"))
    config = RuntimeConfig(root=base / "root", run_root=base / "run", prefix=_prefix())
    yield config
    _remove_everything(config)
    shutil.rmtree(base, ignore_errors=True)


def _remove_everything(config: RuntimeConfig) -> None:
    from runtime.api import Runtime

    rt = Runtime(config)
    for cid in rt.store.ids():
        with contextlib.suppress(Exception):
            rt.delete(cid, force=True)
    with contextlib.suppress(Exception):
        for cid in rt.cgroups.list():
            rt.cgroups.destroy(cid)
    for hierarchy in config.cgroup_root.iterdir():  # the prefix's parent group in every hierarchy
        with contextlib.suppress(OSError):
            os.rmdir(hierarchy / config.cgroup_parent)
    with contextlib.suppress(Exception):
        rt.networks.purge()
        rt.networks.close()


@pytest.fixture(scope="session")
def busybox_image(berth_config):
    """The busybox image, built once into the session's image store."""
    from runtime.images import ImageStore
    from runtime.images.busybox import build_image

    return build_image(ImageStore(berth_config))


@pytest.fixture
def rt(berth_config, busybox_image):
    """A Runtime on the session's config; every container made in the test is deleted after it."""
    from runtime.api import Runtime

    runtime = Runtime(berth_config)
    before = set(runtime.store.ids())
    yield runtime
    for cid in set(runtime.store.ids()) - before:
        with contextlib.suppress(Exception):
            runtime.delete(cid, force=True)


@pytest.fixture
def base_spec():
    """A copy of one base spec dict per test (edit it, then ContainerSpec.from_dict)."""
    return {"image": "busybox", "command": ["sleep", "1000"], "network": {"mode": "none"}}
