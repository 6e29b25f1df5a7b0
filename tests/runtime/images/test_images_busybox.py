"""scripts/build-busybox-image: the base image from Debian's busybox-static, offline."""

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from runtime import linux
from runtime.images import ImageStore
from runtime.images.busybox import PATH_ENV

pytestmark = pytest.mark.root

REPO = Path(__file__).resolve().parents[3]
SCRIPT = REPO / "scripts" / "build-busybox-image"
APPLETS = ("sh", "ls", "httpd", "nc", "sleep", "cat", "echo", "true", "env", "ps", "wget", "id")


@pytest.fixture
def built(config):
    """Run the script twice against the test's own state root; return its stdout lines."""
    env = dict(os.environ, BERTH_ROOT=str(config.root), PATH=os.environ["PATH"])
    env.pop("PYTHONPATH", None)
    runs = [
        subprocess.run(
            [str(SCRIPT)], env=env, capture_output=True, text=True, timeout=60, check=True
        )
        for _ in range(2)
    ]
    return [run.stdout.strip() for run in runs]


def test_script_builds_busybox_idempotently(built, config):
    store = ImageStore(config)
    image = store.resolve("busybox")
    assert built == [f"busybox:latest {image.id}"] * 2  # same id twice: nothing changed
    assert [i.id for i in store.list()] == [image.id]
    assert image.config["config"]["Cmd"] == ["sh"]
    assert image.config["config"]["Env"] == [PATH_ENV]
    assert PATH_ENV == "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

    (root,) = store.layer_dirs(image)
    busybox = os.lstat(root / "bin/busybox")
    assert stat.S_ISREG(busybox.st_mode) and busybox.st_mode & 0o111
    for applet in APPLETS:
        path = root / "bin" / applet
        assert os.lstat(path).st_ino == busybox.st_ino or os.readlink(path) == "/bin/busybox", (
            applet
        )
    for path in ("usr/bin/env", "sbin/ip", "usr/sbin/httpd"):
        assert os.lstat(root / path).st_ino == busybox.st_ino, path
    for name in ("etc", "proc", "sys", "dev", "root", "var", "home", "usr/bin", "usr/sbin", "sbin"):
        assert (root / name).is_dir(), name
    assert stat.S_IMODE(os.stat(root / "tmp").st_mode) == 0o1777
    passwd = (root / "etc/passwd").read_text().splitlines()
    assert passwd[0].startswith("root:x:0:0:") and any(
        line.startswith("nobody:x:65534:65534:") for line in passwd
    )
    group = (root / "etc/group").read_text()
    assert "root:x:0:" in group and "nobody:x:65534:" in group


def test_busybox_runs_from_its_overlay(built, config, tmp_path):
    (root,) = ImageStore(config).layer_dirs(ImageStore(config).resolve("busybox:latest"))
    merged, upper, work = (tmp_path / name for name in ("merged", "upper", "work"))
    for path in (merged, upper, work):
        path.mkdir()
    linux.mount(
        "overlay", str(merged), "overlay", 0, f"lowerdir={root},upperdir={upper},workdir={work}"
    )
    try:
        result = subprocess.run(
            ["chroot", str(merged), "/bin/sh", "-c", "echo hi > /tmp/x && cat /tmp/x && id -un && id -u nobody"],
            capture_output=True, text=True, timeout=30, env={"PATH": PATH_ENV[5:]},
        )  # fmt: skip
    finally:
        linux.umount(str(merged), linux.MNT_DETACH)
    assert (result.returncode, result.stdout) == (0, "hi\nroot\n65534\n"), result.stderr
    assert (upper / "tmp/x").read_text() == "hi\n"  # writes land in the container's upper layer
    assert not (root / "tmp/x").exists()


def test_build_module_runs_without_the_script(config):
    env = dict(os.environ, BERTH_ROOT=str(config.root), PYTHONPATH=str(REPO))
    result = subprocess.run(
        [sys.executable, "-m", "runtime.images.busybox", "--ref", "bb:test"],
        env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert ImageStore(config).resolve("bb:test").repo_tags == ["bb:test"]
