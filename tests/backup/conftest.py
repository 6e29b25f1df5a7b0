"""Backup tests: the two-host fleet (tests/fleet/fleet.py) for the end-to-end restore; named
users, two teams, one host and a private Redis (tests/fixtures_platform.py) for the rest,
prefix `tb`. `password` writes the restic repository's password file for a test."""

import subprocess
from pathlib import Path

import pytest
from django.test import override_settings

from tests.fixtures_platform import Area, broker, host, redis_url, teams, users
from tests.fleet.fleet import fleet

__all__ = ["broker", "fleet", "host", "redis_url", "teams", "users"]  # fixtures, found here


@pytest.fixture
def area():
    """Prefix `tb`."""
    return Area("tb", lambda name: f"tb-{name}", lambda name: f"{name}-password-1")


@pytest.fixture
def password(tmp_path, monkeypatch):
    """A backup password file for this test (BERTH_BACKUP_PASSWORD_FILE), and a private cache."""
    path = tmp_path / "backup.password"
    path.write_text("tb-test-password")
    path.chmod(0o600)
    monkeypatch.setenv("BERTH_BACKUP_PASSWORD_FILE", str(path))
    monkeypatch.setenv("BERTH_RESTIC_CACHE", str(tmp_path / "restic-cache"))
    with override_settings(DATA_DIR=tmp_path / "data"):
        yield path


@pytest.fixture
def small_mount(tmp_path):
    """mount(size_kb, ro=False) -> a tmpfs of that size; unmounted afterwards, even on failure."""
    made = []

    def mount(size_kb: int, ro: bool = False) -> Path:
        where = tmp_path / f"mnt{len(made)}"
        where.mkdir()
        opts = f"size={size_kb}k" + (",ro" if ro else "")
        subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "tbtmp", str(where)], check=True)
        made.append(where)
        return where

    yield mount
    for where in reversed(made):
        subprocess.run(["umount", "-l", str(where)], check=False)
