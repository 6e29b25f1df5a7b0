"""Guards for the project layout the design card fixes."""

import importlib
import platform as stdlib_platform
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def test_platform_folder_is_not_a_package():
    assert not (REPO / "platform" / "__init__.py").exists()
    # The standard library's module must win: Django, Celery and uuid import it.
    assert (
        stdlib_platform.__file__.startswith(sys.base_prefix)
        or "lib/python" in stdlib_platform.__file__
    )
    assert hasattr(importlib.import_module("platform"), "python_version")


def test_runtime_never_imports_django():
    for path in (REPO / "runtime").rglob("*.py"):
        text = path.read_text()
        assert "import django" not in text and "from django" not in text, path


def test_readme_opens_with_the_two_commands():
    lines = [line for line in (REPO / "README.md").read_text().splitlines() if line.strip()]
    commands = [line.split("#")[0].strip() for line in lines[1:6] if line.startswith("bash ")]
    assert commands == ["bash scripts/berth-up", "bash scripts/test"]
    ci = (REPO / ".ci" / "run").read_text()
    assert "scripts/test" in ci


@pytest.mark.skipif(
    not shutil.which("docker-compose"), reason="docker-compose (Debian package) not installed"
)
def test_compose_file_is_valid():
    result = subprocess.run(
        ["docker-compose", "-f", str(REPO / "docker-compose.dev.yml"), "config", "-q"],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    assert result.returncode == 0, result.stderr
