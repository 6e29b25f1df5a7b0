"""End to end, real agent and containers: a rolling update of three containers to a rebuilt
image keeps their volumes' data, a broken new image is rolled back (the rest untouched), and
a team that opted in to scheduled rollouts gets the next good rebuild from the scheduled
pass."""

import io
import json
import tarfile
import urllib.error
import urllib.request
import uuid

import pytest

from tests.e2e.conftest import stack, web  # noqa: F401  (fixtures)

pytestmark = [pytest.mark.e2e, pytest.mark.root]

RUN = "sh -c 'cat /version >> /data/history; trap \"exit 0\" TERM; while true; do sleep 1; done'"


def _context(version: str, cmd: str = RUN) -> bytes:
    files = {
        "Dockerfile": f"FROM busybox\nCOPY version /version\nCMD {cmd}\n".encode(),
        "version": f"{version}\n".encode(),
    }
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _build(site, tag: str, context: bytes) -> dict:
    """Build through the API (the agent's builder); returns the operation's result."""
    boundary = uuid.uuid4().hex
    out = io.BytesIO()
    for name, value in {"tag": tag, "host": site.host}.items():
        out.write(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'.encode())
        out.write(f"{value}\r\n".encode())
    out.write(
        f'--{boundary}\r\nContent-Disposition: form-data; name="context"; filename="c.tar"\r\n'
        "Content-Type: application/x-tar\r\n\r\n".encode()
    )
    out.write(context + b"\r\n" + f"--{boundary}--\r\n".encode())
    request = urllib.request.Request(
        f"http://127.0.0.1:{site.web_port}/api/v1/images/build/?wait=120",
        data=out.getvalue(),
        method="POST",
        headers={
            "Authorization": f"Bearer {site.token}",
            "Content-Type": f"multipart/form-data; boundary={boundary}",
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=180) as response:
            body = json.loads(response.read())
    except urllib.error.HTTPError as err:
        pytest.fail(f"build: {err.code} {err.read()[:500]}")
    assert body["operation"]["state"] == "succeeded", body
    return body["operation"]["result"]


def _history(site, volume: str) -> list[str]:
    path = site.root / "volumes" / volume / "_data" / "history"
    return path.read_text().split() if path.exists() else []


def _running(site, names) -> dict:
    """name -> {"id": ...} of the running container rows with these names (read from the
    database: the rows are what the rollout changes)."""
    rows = site.sql("SELECT id, name FROM containers_container WHERE observed_state = 'running'")
    return {name: {"id": pk} for pk, name in rows if name in names}


def test_rolling_update_keeps_volumes_and_a_broken_image_rolls_back(web):  # noqa: F811
    tag = "tc/app:1"
    v1 = _build(web, tag, _context("v1"))
    names = [f"tc-roll-{i}" for i in range(3)]
    for i, name in enumerate(names):
        spec = {
            "image": tag,
            "name": name,
            "stop_timeout": 3,
            "mounts": [{"type": "volume", "source": f"tc-vol-{i}", "target": "/data"}],
            "network": {"mode": "none"},
        }
        status, body = web.api(
            "POST", "containers/?wait=60", {"team": web.team, "host": web.host, "spec": spec}
        )
        assert status == 200 and body["operation"]["state"] == "succeeded", body
    web.wait_until(
        lambda: all(_history(web, f"tc-vol-{i}") == ["v1"] for i in range(3)), 20, "v1 started"
    )
    before = _running(web, names)
    assert len(before) == 3

    # The host's agent reads the image's inventory: busybox has no package database, so its
    # package list is unknown (never clean).
    status, body = web.api(
        "POST", "compliance/inventories/scan/?wait=60", {"image": v1["row"]}, expect=200
    )
    assert body["operation"]["state"] == "succeeded", body
    assert body["operation"]["result"]["unknown"] == 1
    _, listed = web.api("GET", f"compliance/inventories/?image={v1['row']}", expect=200)
    assert listed["results"][0]["status"] == "unknown"
    assert "no package database" in listed["results"][0]["error"]

    v2 = _build(web, tag, _context("v2"))
    assert v2["image_id"] != v1["image_id"]
    status, plan = web.api("POST", "compliance/rollouts/", {"image": v1["row"]})
    assert status == 201, plan
    assert plan["state"] == "planned" and [e["name"] for e in plan["plan"]] == names
    assert {e["state"] for e in plan["plan"]} == {"pending"}
    # The plan changed nothing.
    assert _running(web, names).keys() == before.keys()

    status, done = web.api("POST", f"compliance/rollouts/{plan['id']}/start/", timeout=300)
    assert status == 200 and done["state"] == "succeeded", done
    assert done["new_image_id"] == v2["image_id"]
    after = _running(web, names)
    assert set(after) == set(names)
    for i, name in enumerate(names):
        assert after[name]["id"] != before[name]["id"]  # a new container, same name
        _, detail = web.api("GET", f"containers/{after[name]['id']}/", expect=200)
        assert detail["spec"]["mounts"] == [
            {"type": "volume", "source": f"tc-vol-{i}", "target": "/data"}
            | {
                k: v
                for k, v in detail["spec"]["mounts"][0].items()
                if k not in ("type", "source", "target")
            }
        ]
        # The volume kept what the old container wrote; the new one ran the new image.
        assert _history(web, f"tc-vol-{i}") == ["v1", "v2"]
    _, events = web.api("GET", "audit/?action=container.recreate&page_size=100", expect=200)
    assert len(events["results"]) >= 3

    # A broken image: its command exits at once. The first container is rolled back; the
    # other two are never touched.
    _build(web, tag, _context("v3", cmd="exit 3"))
    status, plan = web.api("POST", "compliance/rollouts/", {"image": v2["row"]})
    assert status == 201, plan
    status, failed = web.api("POST", f"compliance/rollouts/{plan['id']}/start/", timeout=300)
    assert status == 200 and failed["state"] == "failed", failed
    first = failed["plan"][0]
    assert first["state"] == "rolled_back" and "instead of running" in first["detail"], first
    assert [e["state"] for e in failed["plan"][1:]] == ["pending", "pending"]
    web.wait_until(lambda: len(_running(web, names)) == 3, 30, "the old containers running")
    now = _running(web, names)
    assert {n: c["id"] for n, c in now.items()} == {n: c["id"] for n, c in after.items()}
    web.wait_until(
        lambda: _history(web, "tc-vol-0")[-1:] == ["v2"] and len(_history(web, "tc-vol-0")) >= 3,
        20,
        "the rolled-back container started again on v2",
    )
    assert _history(web, "tc-vol-1") == ["v1", "v2"]  # untouched

    # Scheduled: the team opts in (all day, no registry checks); the scheduled pass rolls the
    # next good build out by itself, as the user who opted in.
    status, opted = web.api(
        "POST",
        "compliance/rollout-schedules/",
        {"team": web.team, "window_start": 0, "window_end": 0, "pull": False},
    )
    assert status == 201, opted
    v4 = _build(web, tag, _context("v4"))
    out = web.manage(
        "shell",
        "-c",
        "import json; from compliance import schedule; print(json.dumps(schedule.run_due()))",
    ).stdout
    done = json.loads(out.strip().splitlines()[-1])[web.team]
    assert done["errors"] == [] and [r["state"] for r in done["rollouts"]] == ["succeeded"], done
    assert _history(web, "tc-vol-1") == ["v1", "v2", "v4"]
    _, rollout = web.api("GET", f"compliance/rollouts/{done['rollouts'][0]['id']}/", expect=200)
    assert rollout["new_image_id"] == v4["image_id"]
    [(actor,)] = web.sql(
        "SELECT actor FROM audit_auditevent WHERE action = 'compliance.run' "
        "AND reason LIKE 'scheduled rollouts%'"
    )
    assert actor
