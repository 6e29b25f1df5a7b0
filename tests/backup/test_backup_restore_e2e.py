"""Back up a two-host site, destroy it (database, state roots, volumes), restore it, compare.

The site: two teams, a custom role and bindings, users with tokens (one revoked), 20
containers (some running, some stopped) on two hosts, one joining another's network and pid
namespaces, named volumes with known bytes, a file in a running container's upper layer, a
few hundred audit events. The set holds the images (--images blobs): the hosts' image
stores are destroyed too and nothing is pulled.
"""

import json
import os
import secrets
import shutil
import time
from pathlib import Path

import pytest

from tests.e2e.conftest import call_api
from tests.fleet.fleet import _DELETE_ALL

# The fleet alone takes a minute to build on a busy machine; the default 300 s is too tight.
pytestmark = [pytest.mark.e2e, pytest.mark.root, pytest.mark.timeout(900)]

SETUP = """
from accounts.models import ApiToken, Team, User
from audit.services import record_event
from django.utils import timezone
from rbac.models import Role, RoleBinding
red, _ = Team.objects.get_or_create(name="red")
blue, _ = Team.objects.get_or_create(name="blue")
role = Role.objects.create(name="deployer", permissions=["container.view", "container.create"])
alice = User.objects.create_user("alice", password="alice-password-1")
bob = User.objects.create_user("bob", password="bob-password-1")
RoleBinding.objects.create(role=role, user=alice, scope_team=red)
RoleBinding.objects.create(role=role, user=bob, scope_team=blue)
kept = ApiToken.issue(alice, "kept")[1]
gone_row, gone = ApiToken.issue(bob, "gone")
gone_row.revoked_at = timezone.now()
gone_row.save()
for i in range(300):
    record_event(action="test.event", outcome="allowed", reason=f"event {i}", object_id=i)
print(kept)
print(gone)
"""


def _shell(fleet, code: str) -> list[str]:
    return fleet.manage("shell", "-c", code).stdout.strip().splitlines()


def _rows(fleet):
    """What must survive, as plain tuples."""
    return {
        "users": fleet.sql(
            "SELECT id, username, password, is_active FROM accounts_user ORDER BY id"
        ),
        "teams": fleet.sql("SELECT id, name FROM accounts_team ORDER BY id"),
        "roles": fleet.sql("SELECT id, name, permissions FROM rbac_role ORDER BY id"),
        "bindings": fleet.sql("SELECT * FROM rbac_rolebinding ORDER BY id"),
        "tokens": fleet.sql("SELECT id, key_hash, revoked_at FROM accounts_apitoken ORDER BY id"),
        "containers": fleet.sql(
            "SELECT c.id, c.name, h.name, c.desired_state, c.spec FROM containers_container c "
            "JOIN hosts_host h ON h.id = c.host_id ORDER BY c.id"
        ),
        "volumes": fleet.sql(
            "SELECT v.name, h.name FROM volumes_volume v JOIN hosts_host h ON h.id = v.host_id "
            "ORDER BY v.name"
        ),
    }


def _running(fleet) -> dict:
    return dict(
        fleet.sql(
            "SELECT name, observed_state FROM containers_container WHERE observed_state != 'removed'"
        )
    )


def _make_site(fleet):
    a, b = fleet.hosts[:2]
    kept, gone = _shell(fleet, SETUP)[-2:]
    volumes = {}
    for i in range(20):
        host = (a, b)[i % 2]
        team = ("red", "blue")[i % 2]
        spec = {
            "image": "busybox",
            "name": f"bk{i}",
            "command": ["sh", "-c", f"echo upper-{i} > /marker; exec sleep 100000"],
            "network": {"mode": "none"},
        }
        if i < 6:
            spec["mounts"] = [{"type": "volume", "source": f"bkvol{i}", "target": "/data"}]
        body = {"team": team, "host": host.name, "spec": spec, "start": i % 4 != 3}
        status, out = fleet.api("POST", "containers/?wait=60", body)
        assert status in (200, 201), out
        if i % 4 == 1 and i > 10:
            cid = out["container"]["id"]
            fleet.api("POST", f"containers/{cid}/stop/?wait=60", {"timeout": 1}, expect=200)
    # A joiner: bk4's network and pid namespaces, bound to bk4's runtime id at create.
    joiner = {
        "image": "busybox",
        "name": "bkj",
        "command": ["sleep", "100000"],
        "network": {"mode": "container:bk4"},
        "namespaces": {"pid": "container:bk4"},
    }
    body = {"team": "red", "host": a.name, "spec": joiner, "start": True}
    status, out = fleet.api("POST", "containers/?wait=60", body)
    assert status in (200, 201), out
    for i in range(6):
        host = (a, b)[i % 2]
        data = host.root / "volumes" / f"bkvol{i}" / "_data"
        payload = secrets.token_bytes(4096 * (i + 1))
        (data / "sub").mkdir(parents=True, exist_ok=True)
        (data / "sub" / "blob.bin").write_bytes(payload)
        os.chown(data / "sub" / "blob.bin", 1000, 1000)
        os.chmod(data / "sub" / "blob.bin", 0o640)
        volumes[(host.name, f"bkvol{i}")] = payload
    return kept, gone, volumes


def _destroy(fleet):
    """Agents and web gone; every container, state root, volume, the database and keys."""
    for host in fleet.hosts:
        fleet.kill_agent(host)
    fleet.web.terminate()
    fleet.web.wait(20)
    for host in fleet.hosts:
        done = host.in_netns(_DELETE_ALL)
        assert done.returncode == 0, done.stderr
        # The image store goes too: the set holds the images (--images blobs), no registry.
        shutil.rmtree(host.root, ignore_errors=True)
        shutil.rmtree(host.run_root, ignore_errors=True)
    for name in ("berth.sqlite3", "berth.sqlite3-wal", "berth.sqlite3-shm"):
        (fleet.data_dir / name).unlink(missing_ok=True)
    shutil.rmtree(fleet.data_dir / "agents", ignore_errors=True)
    (fleet.data_dir / "keys" / "control.key").unlink(missing_ok=True)


def _fresh_install(fleet):
    """migrate, bootstrap each host (new keys), its images pulled, web and agents started."""
    fleet.manage("migrate", "--noinput", "--skip-checks")
    for host in fleet.hosts:
        fleet.manage("bootstrap", "--skip-checks", "--host-name", host.name, env=host.env)
        fleet.sql_write("UPDATE hosts_host SET address = ? WHERE name = ?", host.address, host.name)
        host.root.mkdir(parents=True, exist_ok=True)
    fleet._start_web()
    for host in fleet.hosts:
        fleet.start_agent(host)


def _t(label, started=[time.monotonic()]):  # noqa: B006, B008 - a timer for the log
    print(f"{time.monotonic() - started[0]:7.1f}s {label}", flush=True)


def test_backup_destroy_restore_compare(fleet, tmp_path):
    password = fleet.data_dir / "keys" / "backup.password"
    password.parent.mkdir(parents=True, exist_ok=True)
    password.write_text(secrets.token_hex(16))
    password.chmod(0o600)
    _t("start")
    kept, gone, volumes = _make_site(fleet)
    _t("site made")
    call_api(fleet.web_url, kept, "GET", "containers/", expect=200)
    call_api(fleet.web_url, gone, "GET", "containers/", expect=401)
    # A running container's writable layer holds a file of its own.
    fleet.wait_until(
        lambda: all(
            s["status"] != "running" or (s.get("pid") and True)
            for h in fleet.hosts
            for s in h.containers()
        ),
        20,
        "containers to settle",
    )
    before = _rows(fleet)
    states = _running(fleet)
    assert sum(1 for s in states.values() if s == "running") >= 10, states
    assert any(s in ("stopped", "created", "exited") for s in states.values()), states

    target = tmp_path / "backups"
    out = fleet.manage("backup", "--to", str(target), "--images", "blobs").stdout
    set_dir = out.strip().splitlines()[-1]
    data = json.loads((Path(set_dir) / "manifest.json").read_text())
    assert all(part["images"]["count"] >= 1 for part in data["hosts"].values()), data["hosts"]
    head = data["audit_head"]
    head_seq, head_hash = head["seq"], head["hash"]
    assert head_seq > 300

    _t("backed up")
    _destroy(fleet)
    # The second machine comes back under another name: its data follows --host-map.
    b = fleet.hosts[1]
    old_b, new_b = b.name, b.name + "n"
    b.name, b.env = new_b, dict(b.env, BERTH_AGENT_HOST=new_b)
    volumes = {(new_b if h == old_b else h, v): data for (h, v), data in volumes.items()}
    _fresh_install(fleet)
    _t("fresh install")
    host_map = ["--host-map", f"{old_b}={new_b}"]
    dry = fleet.manage("restore", set_dir, *host_map, "--dry-run").stdout
    assert "dry run: nothing was changed" in dry and f"host {old_b} -> {new_b}" in dry
    assert "image(s) from the set" in dry
    assert not (fleet.hosts[0].root / "images" / "index.json").exists()
    fleet.manage("restore", set_dir, *host_map)
    _t("restored")

    def renamed(row, at):
        return (*row[:at], new_b if row[at] == old_b else row[at], *row[at + 1 :])

    after = _rows(fleet)
    before["volumes"] = [renamed(r, 1) for r in before["volumes"]]
    before["containers"] = [renamed(r, 2) for r in before["containers"]]
    for key in ("users", "teams", "roles", "bindings", "tokens", "volumes"):
        assert after[key] == before[key], key
    assert [r[:4] for r in after["containers"]] == [r[:4] for r in before["containers"]]

    def same_states():
        now = _running(fleet)
        return all((now[n] == "running") == (s == "running") for n, s in states.items())

    fleet.wait_until(same_states, 30, "restored containers to reach their states")
    for (host_name, vol), payload in volumes.items():
        [host] = [h for h in fleet.hosts if h.name == host_name]
        blob = host.root / "volumes" / vol / "_data" / "sub" / "blob.bin"
        assert blob.read_bytes() == payload, vol
        st = blob.stat()
        assert (st.st_uid, st.st_mode & 0o777) == (1000, 0o640)
    # The upper layer came back: the file the container wrote before the backup.
    for host in fleet.hosts:
        for state in host.containers():
            if state["status"] == "running" and state["name"][2:].isdigit():
                code, text = host.runtime().exec(state["id"], ["cat", "/marker"])
                assert code == 0 and text.strip() == f"upper-{state['name'][2:]}".encode()

    # The joiner came back in its target's new namespaces (old ids mapped to new ones).
    [a] = [h for h in fleet.hosts if h.name != new_b]
    by_name = {s["name"]: s for s in a.containers()}
    target, joined = by_name["bk4"], by_name["bkj"]
    assert joined["status"] == "running", joined
    for ns in ("net", "pid"):
        assert os.readlink(f"/proc/{joined['pid']}/ns/{ns}") == os.readlink(
            f"/proc/{target['pid']}/ns/{ns}"
        ), ns
    [(spec,)] = fleet.sql("SELECT spec FROM containers_container WHERE name = 'bkj'")
    assert json.loads(spec)["network"]["mode"] == "container:" + target["id"]

    # The audit chain: intact, the backed-up head inside it, and it went on after the restore.
    fleet.manage("verify_audit_chain")
    assert fleet.sql("SELECT hash FROM audit_auditevent WHERE seq = ?", head_seq) == [(head_hash,)]
    actions = [
        r[0] for r in fleet.sql("SELECT action FROM audit_auditevent WHERE seq > ?", head_seq)
    ]
    assert "backup.restore" in actions
    # Tokens: the old ones work, the revoked one still does not.
    call_api(fleet.web_url, kept, "GET", "containers/", expect=200)
    call_api(fleet.web_url, gone, "GET", "containers/", expect=401)
    fleet.api("GET", "backups/", expect=200)
