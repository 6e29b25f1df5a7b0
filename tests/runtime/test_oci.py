"""spec -> OCI config.json, checked by running it with runc when runc is installed."""

import contextlib
import os
import shutil
import subprocess

import pytest

from runtime.container.hardening import cap_mask
from runtime.oci import to_oci, write_bundle
from runtime.spec import DEFAULT_CAPABILITIES, ContainerSpec


def test_config_shape():
    spec = ContainerSpec.from_dict(
        {
            "image": "busybox",
            "command": ["sh"],
            "limits": {"memory": "64m", "pids": 50},
            "network": {"mode": "none"},
            "mounts": [{"type": "tmpfs", "target": "/scratch"}],
        }
    )
    cfg = to_oci(
        spec, "/rootfs", hostname="h", image_config={"config": {"Env": ["A=1"], "WorkingDir": "/w"}}
    )
    assert cfg["process"]["args"] == ["sh"]
    assert "A=1" in cfg["process"]["env"]
    assert cfg["process"]["cwd"] == "/w"
    assert cfg["process"]["noNewPrivileges"] is True
    assert cfg["process"]["capabilities"]["bounding"] == ["CAP_" + c for c in DEFAULT_CAPABILITIES]
    assert {ns["type"] for ns in cfg["linux"]["namespaces"]} == {
        "mount",
        "pid",
        "ipc",
        "uts",
        "cgroup",
        "network",
    }
    assert cfg["linux"]["resources"]["memory"]["limit"] == 64 * 1024 * 1024
    assert cfg["linux"]["resources"]["pids"]["limit"] == 50
    assert "/proc/kcore" in cfg["linux"]["maskedPaths"]
    assert any(m["destination"] == "/scratch" and m["type"] == "tmpfs" for m in cfg["mounts"])


@pytest.mark.root
@pytest.mark.skipif(shutil.which("runc") is None, reason="runc is not installed")
def test_runc_runs_our_config(rt, busybox_image, tmp_path):
    rootfs = str(os.path.realpath(rt.images.layer_dirs(busybox_image)[0]))
    spec = ContainerSpec.from_dict(
        {
            "image": "busybox",
            "command": ["cat", "/proc/self/status"],
            "read_only_rootfs": True,
            "network": {"mode": "none"},
            "limits": {"memory": "32m"},
        }
    )
    group = f"{rt.config.prefix}oci"
    write_bundle(tmp_path / "bundle", spec, rootfs, hostname="oci", cgroups_path=f"/{group}/c1")
    try:
        out = subprocess.run(
            [
                "runc",
                "--root",
                str(tmp_path / "state"),
                "run",
                "--bundle",
                str(tmp_path / "bundle"),
                f"{rt.config.prefix}oci1",
            ],
            capture_output=True,
            timeout=60,
            stdin=subprocess.DEVNULL,
        )
    finally:
        for hierarchy in os.listdir(rt.config.cgroup_root):
            for sub in (f"{group}/c1", group):
                with contextlib.suppress(OSError):
                    os.rmdir(os.path.join(rt.config.cgroup_root, hierarchy, sub))
    assert out.returncode == 0, out.stderr
    status = dict(line.split(":", 1) for line in out.stdout.decode().splitlines() if ":" in line)
    assert int(status["CapEff"].strip(), 16) == cap_mask(DEFAULT_CAPABILITIES)
    assert status["NoNewPrivs"].strip() == "1"
