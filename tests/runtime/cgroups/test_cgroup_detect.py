"""Layout detection on fake trees, device rules and the BPF device program's shape."""

import os
import struct

import pytest

from runtime.cgroups import DEFAULT_DEVICE_RULES, DeviceRule, V1Driver, V2Driver, detect, driver_for
from runtime.cgroups.bpf import device_filter
from runtime.cgroups.devices import allowed_rules
from runtime.config import RuntimeConfig
from runtime.errors import InvalidSpec, KernelError


def _v1_tree(
    root, controllers=("memory", "cpu", "cpuacct", "cpuset", "pids", "blkio", "freezer", "devices")
):
    for name in controllers:
        (root / name).mkdir(parents=True)
        (root / name / "cgroup.procs").write_text("")


def test_pure_v1_is_detected(tmp_path):
    _v1_tree(tmp_path)
    layout = detect(tmp_path)
    assert layout.version == 1
    assert layout.mounts["memory"] == str(tmp_path / "memory")
    assert set(layout.mounts) == {
        "memory",
        "cpu",
        "cpuacct",
        "cpuset",
        "pids",
        "blkio",
        "freezer",
        "devices",
    }


def test_hybrid_with_unified_mount_is_v1(tmp_path):
    _v1_tree(tmp_path)
    (tmp_path / "unified").mkdir()
    (tmp_path / "unified" / "cgroup.controllers").write_text("hugetlb\n")
    assert detect(tmp_path).version == 1
    driver = driver_for(RuntimeConfig(prefix="tcgdet", cgroup_root=tmp_path))
    assert isinstance(driver, V1Driver)
    assert "unified" not in driver.mounts


def test_pure_v2_is_detected(tmp_path):
    (tmp_path / "cgroup.controllers").write_text("cpuset cpu io memory pids\n")
    assert detect(tmp_path).version == 2
    driver = driver_for(RuntimeConfig(prefix="tcgdet", cgroup_root=tmp_path))
    assert isinstance(driver, V2Driver) and driver.version == 2
    assert driver.parent == f"{tmp_path}/tcgdet"


def test_comounted_controllers_share_one_tree(tmp_path):
    _v1_tree(tmp_path, ("memory", "cpu,cpuacct"))
    os.symlink("cpu,cpuacct", tmp_path / "cpu")
    os.symlink("cpu,cpuacct", tmp_path / "cpuacct")
    driver = driver_for(RuntimeConfig(prefix="tcgdet", cgroup_root=tmp_path))
    assert driver.mounts["cpu"] == driver.mounts["cpuacct"] == str(tmp_path / "cpu,cpuacct")
    assert driver.procs_files("c1") == [
        f"{tmp_path}/cpu,cpuacct/tcgdet/c1/cgroup.procs",
        f"{tmp_path}/memory/tcgdet/c1/cgroup.procs",
    ]


def test_no_cgroups_is_a_clear_error(tmp_path):
    with pytest.raises(KernelError, match="no cgroup"):
        detect(tmp_path)


def test_this_host_is_detected():
    layout = detect("/sys/fs/cgroup")
    assert layout.version in (1, 2)


@pytest.mark.parametrize("cid", ["", "../x", "a/b", ".hidden", "x" * 200, None])
def test_unsafe_container_ids_are_refused(tmp_path, cid):
    (tmp_path / "cgroup.controllers").write_text("")
    driver = driver_for(RuntimeConfig(prefix="tcgdet", cgroup_root=tmp_path))
    with pytest.raises(InvalidSpec, match="container id"):
        driver.procs_files(cid)


def test_device_rules_parse_and_print():
    assert str(DeviceRule.parse("c 1:3 rwm")) == "c 1:3 rwm"
    assert DeviceRule.parse("b *:* m") == DeviceRule("b", None, None, "m")
    assert DeviceRule.parse("a") == DeviceRule("a", None, None, "rwm")
    assert DeviceRule.from_path("/dev/null", "rw") == DeviceRule("c", 1, 3, "rw")
    for bad in ("c 1:3", "x 1:3 r", "c 1:3 rwx", "c a:b r", ""):
        with pytest.raises(InvalidSpec):
            DeviceRule.parse(bad)
    with pytest.raises(InvalidSpec, match="not a device"):
        DeviceRule.from_path("/etc/hostname")
    with pytest.raises(InvalidSpec):
        DeviceRule("c", 1, 3, "rr")


def test_default_rules_are_dockers():
    assert [str(r) for r in DEFAULT_DEVICE_RULES] == [
        "c *:* m",
        "b *:* m",
        "c 1:3 rwm",
        "c 1:5 rwm",
        "c 1:7 rwm",
        "c 1:8 rwm",
        "c 1:9 rwm",
        "c 5:0 rwm",
        "c 5:1 rwm",
        "c 5:2 rwm",
        "c 136:* rwm",
    ]
    assert allowed_rules(privileged=True) == [DeviceRule("a", None, None, "rwm")]
    extra = allowed_rules(["c 10:200 rwm", DeviceRule("c", 1, 3, "rwm")])
    assert (
        extra[-1] == DeviceRule("c", 10, 200, "rwm") and len(extra) == len(DEFAULT_DEVICE_RULES) + 1
    )


def test_device_program_ends_in_deny():
    code = device_filter(list(DEFAULT_DEVICE_RULES))
    assert len(code) % 8 == 0
    insns = [struct.unpack("<BBhi", code[i : i + 8]) for i in range(0, len(code), 8)]
    # The last two instructions: r0 = 0; exit.
    assert insns[-2] == (0xB7, 0, 0, 0) and insns[-1][0] == 0x95
    # Every jump lands inside the program.
    for index, (op, _regs, off, _imm) in enumerate(insns):
        if op == 0x55:
            assert 0 < index + 1 + off < len(insns)
