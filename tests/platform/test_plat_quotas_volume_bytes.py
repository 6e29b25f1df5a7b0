"""Team quota on the named volumes' total size (issue 14): measured on the host like `du`,
at the quota a new volume or a start with volumes is allowed, one byte past it refused with
the message naming the quota, the use and the ask; usage in the API and on the team page."""

import os
import subprocess
from datetime import timedelta

import pytest
from agent import volume_sizes
from django.test import Client
from django.utils import timezone

from audit.models import AuditEvent
from containers.models import Container
from runtime.api import Runtime
from runtime.config import RuntimeConfig
from volumes.models import Volume

pytestmark = pytest.mark.django_db
QUOTA = 10_000


def _quotas(api, team, quotas):
    response = api("admin").put(
        f"/api/v1/teams/{team.pk}/quotas/", {"quotas": quotas}, format="json"
    )
    assert response.status_code == 200, response.content


def _volume(api, host, name):
    body = {"team": "tp-alpha", "host": host.name, "name": name}
    return api("developer").post("/api/v1/volumes/", body, format="json")


def _container(api, host, *, start=True, mounts=()):
    body = {
        "team": "tp-alpha",
        "host": host.name,
        "start": start,
        "spec": {"image": "busybox", "mounts": list(mounts)},
    }
    return api("developer").post("/api/v1/containers/", body, format="json")


def _measured(name, size):
    Volume.objects.filter(name=name).update(size=size, size_measured_at=timezone.now())


def test_at_the_quota_allowed_one_byte_over_refused(api, host, teams):
    _quotas(api, teams["alpha"], {"volume_bytes": QUOTA})
    assert _volume(api, host, "vb1").status_code == 202
    mounts = [{"type": "volume", "source": "vb1", "target": "/d"}]
    stopped = _container(api, host, start=False, mounts=mounts)
    assert stopped.status_code == 202, stopped.content
    _measured("vb1", QUOTA)  # at the quota: still allowed
    assert _volume(api, host, "vb2").status_code == 202
    assert _container(api, host, mounts=mounts).status_code == 202
    _measured("vb1", QUOTA + 1)  # one byte past it
    refused = _volume(api, host, "vb3")
    assert refused.status_code == 403
    assert refused.json()["error"]["message"] == (
        f"volume_bytes: team tp-alpha's quota is {QUOTA}, {QUOTA + 1} in use (as measured on "
        "its hosts), this asks 0 more: no new volume nor a start with volumes until the "
        "team's volumes are back within it"
    )
    assert _container(api, host, mounts=mounts).status_code == 403
    pk = Container.objects.get(desired_state="created").pk
    start = api("developer").post(f"/api/v1/containers/{pk}/start/")
    assert start.status_code == 403 and "volume_bytes" in start.json()["error"]["message"]
    # A container without volumes adds nothing to the volumes: it still runs.
    assert _container(api, host).status_code == 202
    assert not Volume.objects.filter(name="vb3").exists()
    denied = AuditEvent.objects.filter(outcome="denied", reason__contains="volume_bytes")
    assert denied.count() == 3
    usage = api("developer").get(f"/api/v1/teams/{teams['alpha'].pk}/usage/").json()
    assert usage["usage"]["volume_bytes"] == QUOTA + 1
    shown = api("developer").get("/api/v1/volumes/").json()
    shown = shown.get("results", shown)
    assert {v["name"]: v["size"] for v in shown} == {"vb1": QUOTA + 1, "vb2": None}
    assert usage["quotas"] == {"volume_bytes": QUOTA}


def test_team_page_shows_the_volume_bytes_use(api, host, teams, users):
    _quotas(api, teams["alpha"], {"volume_bytes": 64 * 1024**2})
    assert _volume(api, host, "vb1").status_code == 202
    _measured("vb1", 3 * 1024**2)
    client = Client()
    client.force_login(users["admin"])
    page = client.get("/manage/teams/").content.decode()
    assert "volume_bytes 3 MiB / 64 MiB" in page


def test_disk_usage_counts_like_du(tmp_path):
    data = tmp_path / "data"
    (data / "sub").mkdir(parents=True)
    (data / "a").write_bytes(os.urandom(100_000))
    os.link(data / "a", data / "sub" / "a-again")  # one file, counted once
    (tmp_path / "outside").write_bytes(os.urandom(300_000))
    (data / "link").symlink_to(tmp_path / "outside")  # not followed
    (data / "sparse").write_bytes(b"")
    os.truncate(data / "sparse", 50_000_000)  # allocated blocks count, not the length
    du = subprocess.run(
        ["du", "-s", "-x", "--block-size=1", str(data)], capture_output=True, text=True, check=True
    )
    assert volume_sizes.disk_usage(data) == int(du.stdout.split()[0])
    assert 100_000 <= volume_sizes.disk_usage(data) < 200_000


def test_the_agent_measures_its_hosts_volumes(tmp_path, host, teams):
    rt = Runtime(RuntimeConfig(root=tmp_path / "root", run_root=tmp_path / "run", prefix="tpvb"))
    made = Volume.objects.create(team=teams["alpha"], host=host, name="vbm")
    bind = Volume.objects.create(
        team=teams["alpha"], host=host, name="vbd", options={"device": str(tmp_path)}
    )
    never = Volume.objects.create(team=teams["alpha"], host=host, name="vbn")
    data = rt.config.volumes_dir / "vbm" / "_data"
    data.mkdir(parents=True)
    (data / "f").write_bytes(os.urandom(40_000))
    assert volume_sizes.measure(host.name, rt) == 2
    made.refresh_from_db(), bind.refresh_from_db(), never.refresh_from_db()
    assert made.size == volume_sizes.disk_usage(data) and made.size >= 40_000
    assert bind.size is None and bind.size_measured_at is None  # a host path: not counted
    assert never.size is None and never.size_measured_at is not None  # not made yet
    (data / "g").write_bytes(os.urandom(40_000))
    assert volume_sizes.measure(host.name, rt) == 0  # measured lately: not again yet
    Volume.objects.filter(pk=made.pk).update(size_measured_at=timezone.now() - timedelta(hours=1))
    assert volume_sizes.measure(host.name, rt) == 1
    made.refresh_from_db()
    assert made.size >= 80_000


def test_a_pass_stops_walking_after_its_budget(tmp_path, host, teams, monkeypatch):
    rt = Runtime(RuntimeConfig(root=tmp_path / "root", run_root=tmp_path / "run", prefix="tpvb"))
    for name in ("vbx", "vby"):
        Volume.objects.create(team=teams["alpha"], host=host, name=name)
    monkeypatch.setattr(volume_sizes, "BUDGET_SECONDS", -1.0)  # spent before the first
    assert volume_sizes.measure(host.name, rt) == 0
    monkeypatch.setattr(volume_sizes, "BUDGET_SECONDS", 2.0)
    assert volume_sizes.measure(host.name, rt) == 2
