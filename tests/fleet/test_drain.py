"""Draining a host (issue 9): its containers are recreated on the other host, volumes copied.

The volume's files (contents, owners, modes) arrive on the new host through the control plane,
signed by each host's key; the old host keeps nothing running and takes no new containers.
"""

import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.root]

LABEL = "io.berth.container"
WRITE = (
    "echo drained-payload > /data/file && chown 1000:1000 /data/file && chmod 640 /data/file "
    "&& mkdir -p /data/sub && echo deep > /data/sub/x && exec sleep 100000"
)


def host_id(fleet, host) -> int:
    return fleet.sql("SELECT id FROM hosts_host WHERE name = ?", host.name)[0][0]


def mine(host, container_id) -> list[dict]:
    wanted = f"{host.name}/{container_id}"
    return [s for s in host.containers() if (s["spec"].get("labels") or {}).get(LABEL) == wanted]


def test_drain_moves_containers_and_their_volumes(fleet):
    a, b = fleet.hosts[:2]
    body = {
        "team": fleet.team,
        "host": a.name,
        "spec": {
            "image": "busybox",
            "name": "mover",
            "command": ["sh", "-c", WRITE],
            "mounts": [{"type": "volume", "source": "dvol", "target": "/data"}],
            "network": {"mode": "none"},
        },
    }
    status, out = fleet.api("POST", "containers/?wait=60", body)
    assert status == 200 and out["container"]["observed_state"] == "running", out
    old = out["container"]

    def written():
        code, text = a.runtime().exec(old["runtime_id"], ["cat", "/data/sub/x"])
        return code == 0 and b"deep" in text

    fleet.wait_until(written, 20, "the container to write its volume")

    status, report = fleet.api("POST", f"hosts/{host_id(fleet, a)}/drain/", {}, timeout=300)
    assert status == 200, report
    assert report["failed"] == [] and len(report["moved"]) == 1, report
    moved = report["moved"][0]
    assert moved["host"] == b.name

    # On b: running, with the volume's files as they were (contents, owner, mode).
    _, row = fleet.api("GET", f"containers/{moved['new_id']}/", expect=200)
    assert row["observed_state"] == "running", row
    [copy] = mine(b, moved["new_id"])
    code, text = b.runtime().exec(copy["id"], ["ls", "-ln", "/data/file"])
    assert code == 0 and text.split()[0].decode() == "-rw-r-----", text
    assert text.split()[2:4] == [b"1000", b"1000"], text
    code, text = b.runtime().exec(copy["id"], ["cat", "/data/file", "/data/sub/x"])
    assert text.split() == [b"drained-payload", b"deep"], text

    # On a: nothing of it left running, the row removed, the host cordoned.
    assert mine(a, old["id"]) == []
    _, row = fleet.api("GET", f"containers/{old['id']}/", expect=200)
    assert row["desired_state"] == "removed"
    assert fleet.sql("SELECT cordoned FROM hosts_host WHERE name = ?", a.name)[0][0] == 1
    events = dict(
        fleet.sql(
            "SELECT action, outcome FROM audit_auditevent WHERE action LIKE 'transfer.%' "
            "AND outcome = 'allowed'"
        )
    )
    assert events == {"transfer.upload": "allowed", "transfer.download": "allowed"}
    # The archive does not stay on the control plane's disk.
    assert not list((fleet.data_dir / "transfers").glob("*.tar.gz"))

    # A cordoned host takes no new container.
    body["spec"]["name"] = "late"
    status, out = fleet.api("POST", "containers/?wait=30", body)
    assert status == 409 and "cordoned" in out["error"]["message"], out
    fleet.api("DELETE", f"containers/{moved['new_id']}/?wait=60&force=1", expect=200)
