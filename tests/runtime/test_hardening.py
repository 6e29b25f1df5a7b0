"""Hardening by default, checked from inside the container; privileged turns it off."""

import os

import pytest
from rt_helpers import output, run_output

from runtime.container.hardening import cap_mask
from runtime.spec import DEFAULT_CAPABILITIES

pytestmark = pytest.mark.root


def _status_field(text: str, key: str) -> str:
    for line in text.splitlines():
        if line.startswith(key + ":"):
            return line.split(":", 1)[1].strip()
    raise AssertionError(f"{key} not in /proc/self/status")


def test_default_capabilities_and_no_new_privs(rt, base_spec):
    base_spec["command"] = ["cat", "/proc/self/status"]
    code, text = run_output(rt, base_spec)
    assert code == 0
    want = cap_mask(DEFAULT_CAPABILITIES)
    assert int(_status_field(text, "CapEff"), 16) == want
    assert int(_status_field(text, "CapPrm"), 16) == want
    assert int(_status_field(text, "CapBnd"), 16) == want
    assert int(_status_field(text, "CapInh"), 16) == 0
    assert int(_status_field(text, "CapAmb"), 16) == 0
    assert _status_field(text, "NoNewPrivs") == "1"


def test_cap_drop_and_non_root_user(rt, base_spec):
    base_spec.update(
        command=["cat", "/proc/self/status"], cap_drop=["NET_RAW", "MKNOD"], user="1000:1000"
    )
    code, text = run_output(rt, base_spec)
    assert code == 0
    assert _status_field(text, "Uid").split()[0] == "1000"
    assert int(_status_field(text, "CapEff"), 16) == 0
    bnd = int(_status_field(text, "CapBnd"), 16)
    assert bnd == cap_mask([c for c in DEFAULT_CAPABILITIES if c not in ("NET_RAW", "MKNOD")])


def test_masked_and_read_only_proc_sys(rt, base_spec):
    st = rt.run(base_spec)
    assert output(rt, st["id"], "cat", "/proc/timer_list") == ""
    assert output(rt, st["id"], "cat", "/proc/keys") == ""
    assert output(rt, st["id"], "ls", "/proc/acpi").strip() == ""
    # Every masked directory shows the same read-only, empty tmpfs (one superblock, issue 19).
    assert output(rt, st["id"], "ls", "-A", "/sys/firmware").strip() == ""
    for where in ("/proc/acpi", "/sys/firmware"):
        out = output(rt, st["id"], "sh", "-c", f"touch {where}/x", code=1)
        assert "Read-only file system" in out
    with open(f"/proc/{st['pid']}/mountinfo") as mountinfo:
        masks = [line.split() for line in mountinfo if " - tmpfs " in line]
    masked = {
        f[4]: (f[2], set(f[5].split(","))) for f in masks if f[4] in ("/proc/acpi", "/sys/firmware")
    }
    assert len(masked) == 2 and len({dev for dev, _ in masked.values()}) == 1
    assert all({"ro", "nosuid", "nodev", "noexec"} <= flags for _, flags in masked.values())
    out = output(rt, st["id"], "sh", "-c", "echo 1 > /proc/sys/kernel/domainname", code=1)
    assert "Read-only file system" in out
    out = output(rt, st["id"], "sh", "-c", "echo x > /sys/kernel/uevent_helper", code=1)
    assert "Read-only" in out or "Permission denied" in out


def test_mount_refused_inside(rt, base_spec):
    st = rt.run(base_spec)
    code, out = rt.exec(st["id"], ["mount", "-t", "tmpfs", "tmpfs", "/tmp"])
    assert code != 0
    assert b"denied" in out or b"not permitted" in out


def test_device_outside_allow_list_unusable_after_mknod(rt, base_spec):
    # The device cgroup is what stops it with the host's user namespace (in a user namespace
    # of its own, mknod itself is refused: test_userns.py).
    st = rt.run(dict(base_spec, namespaces={"user": "host"}))
    # /dev/sda-like block device 8:0 and /dev/mem 1:1: mknod is allowed (as in Docker), use is not.
    output(rt, st["id"], "mknod", "/tmp/mem", "c", "1", "1")
    code, out = rt.exec(st["id"], ["head", "-c", "1", "/tmp/mem"])
    assert code != 0
    assert b"not permitted" in out or b"denied" in out
    assert output(rt, st["id"], "head", "-c", "4", "/dev/zero") == "\0\0\0\0"


def test_dev_is_a_fresh_tmpfs_with_standard_devices(rt, base_spec):
    st = rt.run(base_spec)
    names = set(output(rt, st["id"], "ls", "/dev").split())
    assert {
        "null",
        "zero",
        "full",
        "random",
        "urandom",
        "tty",
        "ptmx",
        "pts",
        "shm",
        "mqueue",
    } <= names
    assert "sda" not in names and "mem" not in names


def test_dev_shm_is_a_nosuid_nodev_noexec_bind_of_the_dev_tmpfs(rt, base_spec):
    # One superblock less per container (issue 19): /dev/shm is /dev's tmpfs, bound onto its
    # own directory with the flags a tmpfs of its own had, and with the same 64 MiB.
    st = rt.run(base_spec)
    with open(f"/proc/{st['pid']}/mountinfo") as mountinfo:
        mounts = {f[4]: f for f in (line.split() for line in mountinfo)}
    dev, shm = mounts["/dev"], mounts["/dev/shm"]
    assert shm[2] == dev[2] and shm[3] == "/shm"  # same superblock, its /shm directory
    assert {"nosuid", "nodev", "noexec"} <= set(shm[5].split(","))
    assert "size=65536k" in dev[-1]
    assert output(rt, st["id"], "stat", "-c", "%a", "/dev/shm").strip() == "1777"
    assert output(rt, st["id"], "sh", "-c", "echo hi > /dev/shm/x && cat /dev/shm/x") == "hi\n"
    out = output(
        rt, st["id"], "sh", "-c", "cp /bin/busybox /dev/shm/b && /dev/shm/b true", code=126
    )
    assert "Permission denied" in out
    assert "65536" in output(rt, st["id"], "df", "-k", "/dev/shm")


def test_inherited_fds_closed(rt, base_spec):
    leak = os.open("/etc/hostname", os.O_RDONLY)  # inheritable on purpose
    os.set_inheritable(leak, True)
    try:
        base_spec["command"] = ["ls", "/proc/self/fd"]
        code, text = run_output(rt, base_spec)
    finally:
        os.close(leak)
    assert code == 0
    assert sorted(int(x) for x in text.split()) == [0, 1, 2, 3]  # 3: ls's own directory fd


def test_exec_gets_the_container_hardening(rt, base_spec):
    st = rt.run(base_spec)
    # The helper that joins the namespaces is non-dumpable until exec (not observable from
    # inside); what is observable: the exec'd program has the container's restrictions.
    text = output(rt, st["id"], "cat", "/proc/self/status")
    assert int(_status_field(text, "CapEff"), 16) == cap_mask(DEFAULT_CAPABILITIES)
    assert _status_field(text, "NoNewPrivs") == "1"


def test_default_pids_limit(rt, base_spec):
    st = rt.run(base_spec)
    stats = rt.stats(st["id"])
    assert stats["pids_limit"] == rt.config.default_pids_limit


def test_privileged_turns_hardening_off(rt, base_spec):
    base_spec.update(command=["cat", "/proc/self/status"], privileged=True)
    code, text = run_output(rt, base_spec)
    assert code == 0
    assert int(_status_field(text, "CapBnd"), 16) == int(_status_field(text, "CapEff"), 16)
    assert bin(int(_status_field(text, "CapEff"), 16)).count("1") > 30
    assert _status_field(text, "NoNewPrivs") == "0"


def test_default_seccomp_filter(rt, base_spec):
    base_spec["command"] = ["cat", "/proc/self/status"]
    code, text = run_output(rt, base_spec)
    assert code == 0
    assert _status_field(text, "Seccomp") == "2"
    st = rt.run(dict(base_spec, command=["sleep", "1000"]))
    assert _status_field(output(rt, st["id"], "cat", "/proc/self/status"), "Seccomp") == "2"
    # unshare(2) is refused by the filter (and by the missing capability).
    code, out = rt.exec(st["id"], ["unshare", "-n", "true"])
    assert code != 0
    base_spec["seccomp"] = False
    code, text = run_output(rt, base_spec)
    assert _status_field(text, "Seccomp") == "0"
