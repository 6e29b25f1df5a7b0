"""User namespaces (asked for explicitly here): root inside is an unprivileged uid outside,
the image still root's. The default and its decisions: test_userns_default.py."""

import contextlib
import os

import pytest
from rt_helpers import output

from runtime.container import userns
from runtime.errors import InvalidSpec

pytestmark = pytest.mark.root

FIRST, COUNT = userns.DEFAULT_POOL[0], userns.RANGE_SIZE  # the "default" key's range


@pytest.fixture
def uspec(base_spec):
    """The base spec with a private user namespace."""
    base_spec["namespaces"] = {"user": "private"}
    return base_spec


def _status_ids(pid: int, field: str) -> list[int]:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return [int(x) for x in line.split()[1:]]
    raise AssertionError(field)


def _fds() -> dict[str, str]:
    found = {}
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):  # the listing's own descriptor is gone
            found[fd] = os.readlink(f"/proc/self/fd/{fd}")
    return found


def _mounts(rt) -> set[str]:
    """This runtime's mounts in the host's table (other suites on the machine mount too)."""
    ours = (str(rt.config.root), str(rt.config.run_root))
    with open("/proc/self/mountinfo") as f:
        found = {" ".join(line.split()[3:5]) for line in f}
    return {m for m in found if m.split()[1].startswith(ours)}


def test_root_inside_is_mapped_uid_outside(rt, uspec):
    st = rt.run(uspec)
    assert _status_ids(st["pid"], "Uid") == [FIRST] * 4
    assert _status_ids(st["pid"], "Gid") == [FIRST] * 4
    assert os.readlink(f"/proc/{st['pid']}/ns/user") != os.readlink("/proc/self/ns/user")
    for kind in ("mnt", "pid", "net", "ipc", "uts", "cgroup"):
        assert os.readlink(f"/proc/{st['pid']}/ns/{kind}") != os.readlink(f"/proc/self/ns/{kind}")
    with open(f"/proc/{st['pid']}/uid_map") as f:
        assert f.read().split() == ["0", str(FIRST), str(COUNT)]
    # exec joins the user namespace too: root there, the same mapping.
    assert output(rt, st["id"], "id", "-u").strip() == "0"
    assert output(rt, st["id"], "cat", "/proc/self/uid_map").split() == [
        "0",
        str(FIRST),
        str(COUNT),
    ]
    assert output(rt, st["id"], "cat", "/proc/1/cmdline").startswith("sleep")
    code, out = rt.exec(st["id"], ["tty"], tty=True)
    assert code == 0 and out.startswith(b"/dev/pts/"), out
    # The cgroup was joined before exec, although root inside could not write there.
    with open(f"/proc/{st['pid']}/cgroup") as f:
        assert f"/{rt.config.prefix}/{st['id']}" in f.read()


def test_create_then_start(rt, uspec):
    st = rt.create(uspec)
    assert _status_ids(st["pid"], "Uid") == [FIRST] * 4  # waiting before exec, already mapped
    rt.start(st["id"])
    assert output(rt, st["id"], "cat", "/proc/1/cmdline").startswith("sleep")


def test_image_files_look_root_owned_and_root_writes(rt, uspec):
    st = rt.run(uspec)
    cid = st["id"]
    assert output(rt, cid, "stat", "-c", "%u:%g", "/", "/bin", "/etc/passwd").split() == ["0:0"] * 3
    output(rt, cid, "sh", "-c", "echo mine > /etc/newfile && chown 1000:1000 /etc/newfile")
    assert output(rt, cid, "stat", "-c", "%u:%g", "/etc/newfile").strip() == "1000:1000"
    assert output(rt, cid, "cat", "/etc/newfile") == "mine\n"
    # The upper layer keeps the image's own uids on disk, like the layers below it.
    upper = rt.config.containers_dir / cid / "upper" / "etc" / "newfile"
    assert upper.read_text() == "mine\n"
    assert (upper.stat().st_uid, upper.stat().st_gid) == (1000, 1000)
    # Devices are the host's nodes, bound (mknod is refused in a user namespace).
    assert output(rt, cid, "sh", "-c", "echo x > /dev/null && head -c 4 /dev/zero | wc -c") == "4\n"


def test_volume_files_belong_to_the_mapped_uid(rt, uspec):
    uspec["mounts"] = [{"type": "volume", "source": "usvol", "target": "/data"}]
    st = rt.run(uspec)
    output(rt, st["id"], "sh", "-c", "echo kept > /data/f")
    made = rt.config.volumes_dir / "usvol" / "_data" / "f"
    assert made.read_text() == "kept\n"
    assert (made.stat().st_uid, made.stat().st_gid) == (FIRST, FIRST)


def test_binds_keep_host_owners_and_capabilities_stay_inside(rt, uspec, tmp_path):
    secret = tmp_path / "secret"
    secret.write_text("host only\n")
    secret.chmod(0o600)
    far = tmp_path / "far"
    far.write_text("far\n")
    os.chown(far, 70000, 70000)  # an id the mapping does not cover
    far.chmod(0o600)
    tmp_path.chmod(0o755)
    uspec["mounts"] = [{"type": "bind", "source": str(tmp_path), "target": "/host"}]
    uspec["cap_add"] = ["SYS_ADMIN"]
    st = rt.run(uspec)
    cid = st["id"]
    # A bind is idmapped: host files keep their owners inside, as without a user namespace
    # (the bind was allowed), and what root inside writes there is root's on the host.
    assert output(rt, cid, "stat", "-c", "%u", "/host/secret").strip() == "0"
    assert output(rt, cid, "cat", "/host/secret") == "host only\n"
    output(rt, cid, "touch", "/host/new")
    assert (tmp_path / "new").stat().st_uid == 0
    # Ids outside the mapping show as the overflow uid and stay out of reach.
    assert output(rt, cid, "stat", "-c", "%u", "/host/far").strip() == "65534"
    assert "Permission denied" in output(rt, cid, "cat", "/host/far", code=1)
    # CAP_MKNOD and CAP_SYS_ADMIN held inside count only in the user namespace.
    code, out = rt.exec(cid, ["mknod", "/tmp/disk", "b", "8", "0"])
    assert code != 0 and b"not permitted" in out
    assert output(rt, cid, "mkdir", "/mnt2") == ""
    code, out = rt.exec(cid, ["mount", "-t", "debugfs", "none", "/mnt2"])
    assert code != 0 and b"permission denied" in out
    # The same mount succeeds where the user namespace is the host's (the control).
    uspec["namespaces"] = {"user": "host"}
    st = rt.run(uspec)
    assert output(rt, st["id"], "sh", "-c", "mkdir /mnt2 && mount -t debugfs none /mnt2") == ""


def test_nothing_leaks(rt, uspec):
    rt.delete(rt.run(uspec)["id"], force=True)  # warm up whatever the runtime caches
    before = _mounts(rt)
    fds = _fds()
    children = set(os.listdir("/proc"))
    st = rt.run(uspec)
    pid = st["pid"]
    assert _mounts(rt) == before  # the idmapped layers and staging live in the container only
    # No namespace or mount descriptor kept (the delete's trash may still close its own).
    assert {fd: target for fd, target in _fds().items() if fds.get(fd) != target} == {}
    rt.delete(st["id"], force=True)
    assert _mounts(rt) == before
    assert not os.path.exists(f"/proc/{pid}")
    leftover = []
    for entry in set(os.listdir("/proc")) - children:
        if entry.isdigit():
            try:
                if _status_ids(int(entry), "Uid")[0] == FIRST:
                    leftover.append(entry)
            except (OSError, AssertionError):
                pass
    assert leftover == []


@pytest.mark.parametrize(
    "change, message",
    [
        ({"privileged": True}, "privileged"),
        ({"namespaces": {"user": "private", "pid": "host"}}, "pid namespace cannot be the host"),
        ({"namespaces": {"user": "container:other"}}, "not joined"),
        ({"network": {"mode": "host"}}, "network mode"),
    ],
)
def test_refused_combinations(rt, uspec, change, message):
    uspec.update(change)
    with pytest.raises(InvalidSpec, match=message):
        rt.create(uspec)


def test_range_from_config_env_and_subuid(tmp_path):
    from runtime.config import RuntimeConfig

    cfg = RuntimeConfig(root=tmp_path, run_root=tmp_path, extra={"userns_range": "200000:1000"})
    assert userns.pool(cfg, environ={}) == (200000, 1000)
    plain = RuntimeConfig(root=tmp_path, run_root=tmp_path)
    assert userns.pool(plain, environ={"BERTH_USERNS_RANGE": "300000:65536"}) == (
        300000,
        65536,
    )
    subuid = tmp_path / "subuid"
    subuid.write_text("alice:100000:65536\nberth:400000:65536\n")
    assert userns.pool(plain, environ={}, subuid=str(subuid)) == (400000, 65536)
    assert userns.pool(plain, environ={}, subuid=str(tmp_path / "none")) == userns.DEFAULT_POOL
    with pytest.raises(InvalidSpec, match="non-root"):
        userns.pool(plain, environ={"BERTH_USERNS_RANGE": "0:65536"})


def test_restart_respawns_in_a_new_user_namespace(rt, uspec):
    import time

    uspec["restart"] = {"name": "always"}
    uspec["tty"] = True
    st = rt.run(uspec)
    first = st["pid"]
    os.kill(first, 9)  # a crash: the shim respawns the container itself
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        new = rt.state(st["id"])
        if new["status"] == "running" and new["pid"] != first:
            break
        time.sleep(0.05)
    else:
        raise AssertionError("not respawned")
    assert _status_ids(new["pid"], "Uid") == [FIRST] * 4
    assert output(rt, st["id"], "stat", "-c", "%u", "/etc/passwd").strip() == "0"
    assert output(rt, st["id"], "readlink", "/proc/1/fd/0").startswith("/dev/pts/")


def test_bridge_network_and_a_low_port(uspec):
    """Root inside binds port 80 in its own network namespace; traffic comes through a map."""
    import urllib.request

    from net_runtime import free_port, net_runtime, poll

    port = free_port()
    uspec.update(
        command=["sh", "-c", "mkdir /www && echo hello > /www/index.html && httpd -f -h /www"],
        network={"ports": [{"container_port": 80, "host_port": port}]},
    )
    with net_runtime() as nrt:
        st = nrt.run(uspec)
        assert _status_ids(st["pid"], "Uid") == [FIRST] * 4
        assert "eth0" in output(nrt, st["id"], "ls", "/sys/class/net")

        def fetch():
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as r:
                    return r.read()
            except OSError:
                return None

        assert poll(lambda: fetch() == b"hello\n")


def test_cli_userns_private(rt):
    import subprocess
    import sys

    env = dict(
        os.environ,
        BERTH_ROOT=str(rt.config.root),
        BERTH_RUN_ROOT=str(rt.config.run_root),
        BERTH_PREFIX=rt.config.prefix,
        BERTH_CGROUP_ROOT=str(rt.config.cgroup_root),
    )
    argv = [
        "run",
        "--network",
        "none",
        "--userns",
        "private",
        "busybox",
        "cat",
        "/proc/self/uid_map",
    ]
    proc = subprocess.run(
        [sys.executable, "-m", "runtime", *argv], env=env, capture_output=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == [b"0", str(FIRST).encode(), str(COUNT).encode()]


def test_a_range_the_kernel_refuses_leaves_nothing(rt, uspec, monkeypatch):
    monkeypatch.setenv("BERTH_USERNS_RANGE", "4294967000:65536")
    before_ids = set(rt.store.ids())
    before_mounts = _mounts(rt)
    with pytest.raises(InvalidSpec, match="cannot map root to host ids"):
        rt.run(uspec)
    assert set(rt.store.ids()) == before_ids
    assert _mounts(rt) == before_mounts
