"""Fixtures of the image store tests: a store in a temporary root with its own prefix."""

import pytest

from runtime.config import RuntimeConfig
from runtime.images import ImageStore


@pytest.fixture
def config(tmp_path):
    """A runtime config whose state lives under this test's tmp_path."""
    return RuntimeConfig(root=tmp_path / "state", run_root=tmp_path / "run", prefix="timg")


@pytest.fixture
def store(config):
    """An empty image store."""
    return ImageStore(config)
