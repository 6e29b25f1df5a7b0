"""Namespaces, root filesystem, mounts and mount-target safety."""

import os

import pytest
from rt_helpers import output, run_output

from runtime.errors import InvalidSpec

pytestmark = pytest.mark.root


def test_namespaces_are_private(rt, base_spec):
    base_spec["hostname"] = "box1"
    st = rt.run(base_spec)
    cid = st["id"]
    assert output(rt, cid, "hostname").strip() == "box1"
    assert output(rt, cid, "cat", "/proc/1/cmdline").startswith("sleep")
    assert output(rt, cid, "ls", "/sys/class/net").split() == ["lo"]
    assert "127.0.0.1" in output(rt, cid, "ip", "addr", "show", "lo")
    for kind in ("mnt", "pid", "net", "ipc", "uts", "cgroup"):
        assert os.readlink(f"/proc/{st['pid']}/ns/{kind}") != os.readlink(
            f"/proc/self/ns/{kind}"
        ), kind
    assert output(rt, cid, "cat", "/proc/self/cgroup").strip().endswith(":/")
    assert output(rt, cid, "cat", "/etc/hostname").strip() == "box1"
    assert "localhost" in output(rt, cid, "cat", "/etc/hosts")
    # The host's files are out of sight.
    assert output(rt, cid, "ls", "/work", code=1)


def test_limits_hold_before_the_program_runs(rt, base_spec):
    st = rt.create(base_spec)
    # Still waiting before exec, the process is already in the container's cgroup.
    with open(f"/proc/{st['pid']}/cgroup") as f:
        groups = f.read()
    assert f"/{rt.config.prefix}/{st['id']}" in groups


def test_overlay_upper_layer_and_read_only_root(rt, base_spec):
    st = rt.run(base_spec)
    output(rt, st["id"], "sh", "-c", "echo data > /etc/newfile")
    assert (
        rt.config.containers_dir / st["id"] / "upper" / "etc" / "newfile"
    ).read_text() == "data\n"
    base_spec["read_only_rootfs"] = True
    st = rt.run(base_spec)
    assert "Read-only" in output(rt, st["id"], "touch", "/etc/x", code=1)


def test_volume_tmpfs_and_bind_mounts(rt, base_spec, tmp_path):
    (tmp_path / "hostfile").write_text("from host\n")
    base_spec["mounts"] = [
        {"type": "volume", "source": "vol1", "target": "/data"},
        {"type": "tmpfs", "target": "/scratch", "options": ["size=1m"]},
        {"type": "bind", "source": str(tmp_path), "target": "/host", "read_only": True},
    ]
    st = rt.run(base_spec)
    output(rt, st["id"], "sh", "-c", "echo kept > /data/f")
    assert (rt.config.volumes_dir / "vol1" / "_data" / "f").read_text() == "kept\n"
    assert "tmpfs" in output(rt, st["id"], "sh", "-c", "grep /scratch /proc/mounts")
    assert output(rt, st["id"], "cat", "/host/hostfile") == "from host\n"
    assert "Read-only" in output(rt, st["id"], "touch", "/host/x", code=1)


def test_mount_target_symlink_stays_inside_root(rt, base_spec, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    base_spec["mounts"] = [{"type": "volume", "source": "evil", "target": "/data"}]
    st = rt.run(base_spec)
    # The container plants a symlink pointing at a host path (CVE-2021-30465's trick).
    output(rt, st["id"], "ln", "-s", str(outside), "/data/link")
    rt.delete(st["id"], force=True)
    base_spec["mounts"].append({"type": "tmpfs", "target": "/data/link/sub"})
    st = rt.run(base_spec)
    assert "tmpfs" in output(rt, st["id"], "sh", "-c", f"grep '{outside}/sub' /proc/mounts")
    assert not (outside / "sub").exists()
    with open("/proc/self/mountinfo") as f:
        assert str(outside) not in f.read()


def test_escaping_and_forbidden_mounts_refused(rt, base_spec):
    before = set(rt.store.ids())
    base_spec["mounts"] = [{"type": "tmpfs", "target": "/a/../../etc"}]
    with pytest.raises(InvalidSpec, match=r"must not contain '\.\.'"):
        rt.run(base_spec)
    base_spec["mounts"] = [{"type": "tmpfs", "target": "/proc/sys"}]
    with pytest.raises(InvalidSpec, match="cannot mount over /proc/sys"):
        rt.run(base_spec)
    base_spec["mounts"] = [{"type": "bind", "source": "/nonexistent-berth", "target": "/x"}]
    with pytest.raises(InvalidSpec, match="bind source path does not exist"):
        rt.run(base_spec)
    assert set(rt.store.ids()) == before


def test_image_config_env_workdir_user(rt, base_spec):
    base_spec.update(
        command=["sh", "-c", "echo $FOO:$PWD:$(id -u):$HOSTNAME"],
        env=["FOO=bar"],
        working_dir="/tmp/wd",
        user="nobody",
        hostname="h1",
    )
    code, text = run_output(rt, base_spec)
    assert code == 0
    assert text.strip() == "bar:/tmp/wd:65534:h1"


def test_unknown_user_is_a_clear_error(rt, base_spec):
    base_spec["user"] = "nosuchuser"
    with pytest.raises(InvalidSpec, match="unable to find user nosuchuser"):
        rt.run(base_spec)


def test_bridge_network_and_shared_netns(rt, base_spec):
    import urllib.request

    base_spec.update(
        command=["httpd", "-f", "-p", "80", "-h", "/etc"], name="web", network={"mode": "bridge"}
    )
    st = rt.run(base_spec)
    (net,) = st["network"]["networks"].values()
    assert output(rt, "web", "cat", "/etc/hosts").count(net["ip"]) >= 1
    # Traffic into the container's own network namespace, through its veth on the bridge.
    body = b""
    for _ in range(50):
        try:
            body = urllib.request.urlopen(f"http://{net['ip']}:80/hostname", timeout=2).read()
            break
        except OSError:
            import time

            time.sleep(0.1)
    assert body == (st["id"][:12] + "\n").encode()
    # A second container joins the first one's network namespace.
    side = rt.run(
        {"image": "busybox", "command": ["sleep", "1000"], "network": {"mode": "container:web"}}
    )
    assert (
        output(rt, side["id"], "wget", "-qO-", "http://127.0.0.1:80/hostname")
        == st["id"][:12] + "\n"
    )
    assert os.readlink(f"/proc/{side['pid']}/ns/net") == os.readlink(f"/proc/{st['pid']}/ns/net")
