"""User namespaces by default: what a spec that does not ask gets, and the decisions around it.

A default container's root is an unprivileged uid on the host, from the range of its key (the
`io.berth.userns` label the agent sets per team, else "default"); volumes are shifted into the
range on first use, `--device` nodes belong to root inside, joiners share the joined user
namespace, and what is root on the host anyway keeps the host's. See docs/userns.md.
"""

import contextlib
import os
import stat
import uuid

import pytest
from rt_helpers import output

from runtime.container import userns
from runtime.errors import InvalidSpec

pytestmark = pytest.mark.root

DEFAULT_FIRST = userns.DEFAULT_POOL[0]


def _uid_map(pid: int) -> list[str]:
    with open(f"/proc/{pid}/uid_map") as f:
        return f.read().split()


def _userns(pid: int) -> str:
    return os.readlink(f"/proc/{pid}/ns/user")


def test_default_root_is_an_unprivileged_uid_and_volumes_follow(rt, base_spec):
    vol = f"udv{uuid.uuid4().hex[:8]}"
    data = rt.volume_path(vol)
    # A volume with files written before (host root's, one setuid): shifted on first use.
    (data / "old").mkdir(parents=True)
    (data / "old" / "tool").write_text("x")
    os.chmod(data / "old" / "tool", 0o4755)
    os.symlink("/etc/shadow", data / "link")
    base_spec["mounts"] = [{"type": "volume", "source": vol, "target": "/data"}]
    st = rt.run(base_spec)
    pid = st["pid"]
    assert st["spec"]["namespaces"]["user"] == "private"  # written down at create
    assert _uid_map(pid) == ["0", str(DEFAULT_FIRST), str(userns.RANGE_SIZE)]
    assert _userns(pid) != _userns(os.getpid())
    with open(f"/proc/{pid}/status") as f:
        uids = next(line for line in f if line.startswith("Uid:")).split()[1:]
    assert uids == [str(DEFAULT_FIRST)] * 4
    # The init joined every group of the container itself (through descriptors its parent
    # opened as host root), before it ran anything.
    for path in rt.cgroups.procs_files(st["id"]):
        with open(path) as f:
            assert str(pid) in f.read().split(), path
    assert output(rt, st["id"], "id", "-u").strip() == "0"
    output(rt, st["id"], "sh", "-c", "echo new > /data/new && mkdir /data/d && chown 7:8 /data/d")
    owners = {
        name: (os.lstat(data / name).st_uid, os.lstat(data / name).st_gid)
        for name in ("new", "d", "old", "old/tool", "link", ".")
    }
    first = DEFAULT_FIRST
    assert owners == {
        "new": (first, first),
        "d": (first + 7, first + 8),
        "old": (first, first),
        "old/tool": (first, first),
        "link": (first, first),  # the link itself, never what it points to
        ".": (first, first),
    }
    assert os.stat("/etc/shadow").st_uid == 0
    assert stat.S_IMODE(os.stat(data / "old" / "tool").st_mode) == 0o4755
    # Inside, the shifted files are root's again.
    assert output(rt, st["id"], "stat", "-c", "%u:%g", "/data/old/tool").strip() == "0:0"


def test_team_ranges_are_their_own_and_kept(rt, base_spec):
    team = f"team-{uuid.uuid4().hex[:8]}"
    base_spec["labels"] = {userns.LABEL: team}
    a = rt.run(base_spec)
    b = rt.run(base_spec)
    first = int(_uid_map(a["pid"])[1])
    assert first != DEFAULT_FIRST and first % userns.RANGE_SIZE == DEFAULT_FIRST % userns.RANGE_SIZE
    assert _uid_map(b["pid"]) == _uid_map(a["pid"])  # one range per team...
    assert _userns(a["pid"]) != _userns(b["pid"])  # ...each container its own namespace
    assert rt.store.read_record(a["id"])["userns"] == {
        "first": first,
        "count": userns.RANGE_SIZE,
        "key": team,
    }
    assert userns.allocate(rt.config, team) == (first, userns.RANGE_SIZE)  # kept


def test_joiners_share_the_user_namespace(rt, base_spec):
    target = rt.run(base_spec)
    joiner = dict(base_spec, network={"mode": f"container:{target['id']}"})
    joiner["namespaces"] = {"pid": f"container:{target['id']}"}
    st = rt.run(joiner)
    assert st["spec"]["namespaces"]["user"] == "private"
    for kind in ("user", "net", "pid"):
        assert os.readlink(f"/proc/{st['pid']}/ns/{kind}") == os.readlink(
            f"/proc/{target['pid']}/ns/{kind}"
        )
    assert output(rt, st["id"], "id", "-u").strip() == "0"
    assert "sleep" in output(rt, st["id"], "ps")  # the target's processes, same pid namespace
    # Asking for a private user namespace while joining a host-userns container: refused.
    host = rt.run(dict(base_spec, namespaces={"user": "host"}))
    with pytest.raises(InvalidSpec, match="runs in the host's user namespace"):
        rt.create(
            dict(
                base_spec,
                namespaces={"user": "private"},
                network={"mode": f"container:{host['id']}"},
            )
        )
    # Left to the default, such a joiner keeps the host's, like the container it joins.
    st = rt.create(dict(base_spec, network={"mode": f"container:{host['id']}"}))
    assert st["spec"]["namespaces"]["user"] == "host"


def test_root_on_the_host_anyway_keeps_the_host_user_namespace(rt, base_spec):
    st = rt.create(dict(base_spec, privileged=True))
    assert st["spec"]["namespaces"]["user"] == "host"
    st = rt.create(dict(base_spec, namespaces={"pid": "host"}))
    assert st["spec"]["namespaces"]["user"] == "host"
    with pytest.raises(InvalidSpec, match="use --userns host"):
        rt.create(dict(base_spec, privileged=True, namespaces={"user": "private"}))


def test_a_container_made_before_the_default_keeps_its_setting(rt, base_spec):
    st = rt.create(dict(base_spec, namespaces={"user": "host"}))
    rec = rt.store.read_record(st["id"])
    del rec["spec"]["namespaces"]["user"]  # as records were written before the change
    rt.store.write_record(rec)
    st = rt.start(st["id"])
    assert _userns(st["pid"]) == _userns(os.getpid())
    assert "user" not in rt.store.read_record(st["id"])["spec"]["namespaces"]


def test_device_nodes_belong_to_root_inside(rt, base_spec):
    host_node = f"/dev/berth-t{uuid.uuid4().hex[:6]}"
    os.mknod(host_node, 0o600 | stat.S_IFCHR, os.makedev(1, 3))  # a null device only root opens
    try:
        st = rt.run(dict(base_spec, devices=[f"{host_node}:/dev/mine"]))
        assert st["spec"]["namespaces"]["user"] == "private"
        assert output(rt, st["id"], "stat", "-c", "%u:%g %a", "/dev/mine").strip() == "0:0 660"
        assert output(rt, st["id"], "sh", "-c", "echo x > /dev/mine && echo ok") == "ok\n"
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(host_node)


def test_the_default_can_be_turned_off_per_host(rt, base_spec):
    rt.config.extra["userns_default"] = "host"
    try:
        st = rt.create(base_spec)
    finally:
        del rt.config.extra["userns_default"]
    assert st["spec"]["namespaces"]["user"] == "host"


def test_pool_ranges(tmp_path):
    from runtime.config import RuntimeConfig

    cfg = RuntimeConfig(root=tmp_path, run_root=tmp_path, extra={"userns_range": "200000:196608"})
    assert userns.allocate(cfg, "default") == (200000, 65536)
    assert userns.allocate(cfg, "team-1") == (265536, 65536)
    assert userns.allocate(cfg, "team-2") == (331072, 65536)
    assert userns.allocate(cfg, "team-1") == (265536, 65536)
    with pytest.raises(InvalidSpec, match="no free user namespace range"):
        userns.allocate(cfg, "team-3")
    one = RuntimeConfig(
        root=tmp_path / "one", run_root=tmp_path, extra={"userns_range": "5000:1000"}
    )
    assert userns.allocate(one, "team-9") == (5000, 1000)  # one range only: shared by all
