"""Docker API container extras without an agent: stats/top shapes, rename, prune, events, df.

Operations stay pending here (no agent); events are derived from succeeded Operation rows,
which the tests write as an agent would. Other teams' objects are 404 and every call is an
audited gate decision.
"""

import io
import json
import os
import tarfile
import time
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone
from dockerapi import archive as docker_archive
from dockerapi import containers as docker_containers
from dockerapi import stats as docker_stats
from dockerapi.events import Source

from accounts.models import ApiToken
from audit.models import AuditEvent
from containers.models import Container
from operations.models import Operation
from tests.platform.factories import make_container
from volumes.models import Volume

pytestmark = pytest.mark.django_db
UA = "Docker-Client/28.2.2 (linux)"
V = "/v1.47"


@pytest.fixture(autouse=True)
def no_waiting(monkeypatch):
    """No agent consumes the queue: calls answer once the Operation is queued."""
    monkeypatch.setattr(docker_containers, "WAIT_SECONDS", 0)


@pytest.fixture
def docker(users):
    def make(name, **options):
        _, secret = ApiToken.issue(users[name], f"docker-x-{name}-{len(options)}", **options)
        return Client(HTTP_AUTHORIZATION=f"Bearer {secret}", HTTP_USER_AGENT=UA)

    return make


@pytest.fixture
def mine(teams, host):
    """A stopped container of alpha (the developer's team) and one of beta."""
    return {
        "alpha": make_container(teams["alpha"], host, "tp-x-a", observed_state="stopped"),
        "beta": make_container(teams["beta"], host, "tp-x-b", observed_state="stopped"),
    }


def _body(response) -> bytes:
    if response.streaming:
        return b"".join(response.streaming_content)
    return response.content


def test_stats_shape_gives_docker_cpu_percent(mine, host):
    host.info = {"cpus": "0-1", "mem_total": 4 << 30}
    mine["alpha"].host = host
    first = {"cpu_usage_ns": 1_000_000_000, "read_at": 100.0, "memory_usage": 50 << 20}
    second = {"cpu_usage_ns": 1_500_000_000, "read_at": 101.0, "memory_usage": 60 << 20}
    shaped = docker_stats.shape(mine["alpha"], second | {"pids_current": 3}, first)
    cpu, pre = shaped["cpu_stats"], shaped["precpu_stats"]
    # The docker CLI's formula: half a second of CPU in one second is 50 %.
    percent = (
        (cpu["cpu_usage"]["total_usage"] - pre["cpu_usage"]["total_usage"])
        / (cpu["system_cpu_usage"] - pre["system_cpu_usage"])
        * cpu["online_cpus"]
        * 100
    )
    assert round(percent) == 50
    assert shaped["memory_stats"] == {
        "usage": 60 << 20,
        "max_usage": 0,
        "limit": 4 << 30,  # no limit: the host's memory, as Docker shows
        "failcnt": 0,
        "stats": {},
    }
    assert shaped["pids_stats"] == {"current": 3} and shaped["name"] == "/tp-x-a"


def test_stats_and_top_of_a_stopped_container_and_of_others(docker, mine):
    client = docker("developer")
    zero = client.get(f"{V}/containers/tp-x-a/stats?stream=0")
    assert zero.status_code == 200 and zero.json()["cpu_stats"]["cpu_usage"]["total_usage"] == 0
    assert client.get(f"{V}/containers/tp-x-a/top").status_code == 409
    bad = client.get(f"{V}/containers/tp-x-a/top?ps_args=-o%20pid,rss")
    assert bad.status_code == 501 and "rss" in bad.json()["message"]
    both = client.get(f"{V}/containers/tp-x-a/stats?stream=1&one-shot=1")
    assert both.status_code == 400
    for path in ("stats?stream=0", "top", "changes", "export", "archive?path=/"):
        response = client.get(f"{V}/containers/tp-x-b/{path}")
        assert response.status_code == 404, (path, response.content)
    denied = AuditEvent.objects.filter(outcome="denied", object_id="tp-x-b")
    assert denied.count() == 5
    allowed = AuditEvent.objects.filter(action="container.stats", outcome="allowed").first()
    assert allowed.summary["user_agent"] == UA and allowed.summary["via"] == "docker-api"


def test_rename_goes_through_the_rest_service(docker, mine):
    client = docker("developer")
    assert client.post(f"{V}/containers/tp-x-a/rename?name=tp-x-new").status_code == 204
    mine["alpha"].refresh_from_db()
    assert mine["alpha"].name == "tp-x-new"
    op = Operation.objects.get(kind="container.rename")
    assert op.params == {"old": "tp-x-a", "new": "tp-x-new"}
    bad = client.post(f"{V}/containers/tp-x-new/rename?name=../x")
    assert bad.status_code == 400
    assert client.post(f"{V}/containers/tp-x-b/rename?name=mine").status_code == 404
    viewer = docker("viewer")
    assert viewer.post(f"{V}/containers/tp-x-new/rename?name=zz").status_code == 403


def test_container_prune_removes_only_the_callers_stopped_ones(docker, teams, host, mine):
    running = make_container(teams["alpha"], host, "tp-x-run", observed_state="running")
    Container.objects.filter(pk=running.pk).update(desired_state="running")
    client = docker("developer")
    answer = client.post(f"{V}/containers/prune")
    assert answer.status_code == 200
    assert answer.json()["ContainersDeleted"] == [f"berth-{mine['alpha'].pk}"]
    ops = list(Operation.objects.values_list("kind", "target_id"))
    assert ops == [("container.remove", str(mine["alpha"].pk))]
    labelled = client.post(f'{V}/containers/prune?filters={{"label":["nope=1"]}}')
    assert labelled.json()["ContainersDeleted"] is None
    assert docker("viewer").post(f"{V}/containers/prune").status_code == 403


def test_volume_prune_keeps_volumes_in_use(docker, teams, host):
    used = Volume.objects.create(team=teams["alpha"], host=host, name="tp-used", state="ready")
    Volume.objects.create(team=teams["alpha"], host=host, name="tp-idle", state="ready")
    Volume.objects.create(team=teams["beta"], host=host, name="tp-theirs", state="ready")
    c = make_container(teams["alpha"], host, "tp-x-vol")
    c.spec = {**c.spec, "mounts": [{"type": "volume", "source": used.name, "target": "/d"}]}
    c.save()
    client = docker("developer")
    # Since API 1.42 only anonymous volumes go unless all=true (Berth makes none).
    assert client.post(f"{V}/volumes/prune").json()["VolumesDeleted"] is None
    pruned = client.post(f'{V}/volumes/prune?filters={{"all":["true"]}}').json()
    assert pruned["VolumesDeleted"] == ["tp-idle"]
    assert list(Operation.objects.values_list("kind", flat=True)) == ["volume.remove"]
    assert client.post(f"{V}/networks/prune").json()["NetworksDeleted"] is None


def _succeeded(container, kind, when, **extra):
    return Operation.objects.create(
        kind=kind,
        target_type="container",
        target_id=str(container.pk),
        host=container.host,
        team=container.team,
        state="succeeded",
        finished_at=when,
        **extra,
    )


def test_events_come_from_operations_and_exits(docker, mine):
    now = timezone.now()
    alpha, beta = mine["alpha"], mine["beta"]
    _succeeded(alpha, "container.create", now - timedelta(seconds=30))
    _succeeded(alpha, "container.start", now - timedelta(seconds=29))
    _succeeded(beta, "container.start", now - timedelta(seconds=28))
    Container.objects.filter(pk=alpha.pk).update(
        exit_code=3, observed_at=now - timedelta(seconds=20)
    )
    client = docker("developer")
    since, until = time.time() - 60, time.time()
    response = client.get(f"{V}/events?since={since}&until={until}")
    assert response.status_code == 200
    events = [json.loads(line) for line in _body(response).splitlines() if line.strip()]
    assert [e["Action"] for e in events] == ["create", "start", "die"]
    assert {e["Actor"]["Attributes"]["name"] for e in events} == {"tp-x-a"}
    assert events[2]["Actor"]["Attributes"]["exitCode"] == "3"
    assert events[0]["Type"] == "container" and events[0]["timeNano"] // 10**9 == events[0]["time"]
    only_die = client.get(f'{V}/events?since={since}&until={until}&filters={{"event":["die"]}}')
    assert [json.loads(x)["Action"] for x in _body(only_die).splitlines()] == ["die"]
    assert client.get(f"{V}/events?since=x").status_code == 400
    assert client.get(f'{V}/events?filters={{"type":["swarm"]}}').status_code == 400


def test_event_source_sends_each_event_once(users, mine):
    now = timezone.now()
    _succeeded(
        mine["alpha"], "container.stop", now - timedelta(seconds=1), result={"exit_code": 137}
    )
    source = Source(users["developer"], {})
    first = source.window(now - timedelta(seconds=5), now)
    assert [e["Action"] for e in first] == ["kill", "die", "stop"]
    assert first[1]["Actor"]["Attributes"]["exitCode"] == "137"
    assert source.window(now - timedelta(seconds=5), now) == []
    _succeeded(mine["alpha"], "container.network_connect", now, params={"network": "tp-net"})
    joined = Source(users["developer"], {"type": ["network"]}).window(now, now + timedelta(1))
    assert [(e["Type"], e["Action"]) for e in joined] == [("network", "connect")]
    assert joined[0]["Actor"]["Attributes"]["name"] == "tp-net"


def test_system_df_counts_what_the_caller_sees(docker, mine):
    data = docker("developer").get(f"{V}/system/df").json()
    assert [c["Names"] for c in data["Containers"]] == [["/tp-x-a"]]
    assert data["BuildCache"] == [] and "LayersSize" in data


def _tar(*entries) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for info, data in entries:
            tar.addfile(info, io.BytesIO(data) if data else None)
    return buffer.getvalue()


def _member(name, kind=tarfile.REGTYPE, data=b"", **extra):
    info = tarfile.TarInfo(name)
    info.type, info.size = kind, len(data)
    for key, value in extra.items():
        setattr(info, key, value)
    return info, data


def test_cp_uploads_are_checked_before_the_host_sees_them(docker, mine, monkeypatch):
    client = docker("developer")

    def put(body, path="/tmp"):
        return client.put(
            f"{V}/containers/tp-x-a/archive?path={path}", body, content_type="application/x-tar"
        )

    bad = [
        (_tar(_member("../evil", data=b"x")), "leaves the target directory"),
        (_tar(_member("a/../../evil", data=b"x")), "leaves the target directory"),
        (_tar(_member("dev", tarfile.CHRTYPE, devmajor=1, devminor=3)), "device node"),
        (_tar(_member("l", tarfile.LNKTYPE, linkname="/etc/shadow")), "outside the archive"),
        (
            _tar(_member("d", tarfile.DIRTYPE), _member("l", tarfile.LNKTYPE, linkname="d")),
            "not a file",
        ),
        (b"not a tar at all" * 100, "not a tar archive"),
    ]
    for body, words in bad:
        response = put(body)
        assert response.status_code == 400 and words in response.json()["message"], words
    monkeypatch.setattr(docker_archive, "MAX_ARCHIVE_BYTES", 1024)
    huge = put(_tar(_member("big", data=b"x" * 4096)))
    assert huge.status_code == 413 and "limit" in huge.json()["message"]
    assert not Operation.objects.exists()
    # Each refusal was still a decision of the gate, kept with the client's User-Agent.
    decided = AuditEvent.objects.filter(action="container.exec", object_id=str(mine["alpha"].pk))
    assert decided.count() == 7 and decided.first().summary["user_agent"] == UA
    assert client.put(f"{V}/containers/tp-x-b/archive?path=/", b"").status_code == 404


def test_merged_layers_and_changes_of_an_upper_layer(tmp_path, monkeypatch):
    from agent import files_ops, overlay_tree

    lower, upper = tmp_path / "lower", tmp_path / "upper"
    for path, data in {"bin/sh": b"sh", "etc/passwd": b"root", "etc/gone": b"x"}.items():
        (lower / path).parent.mkdir(parents=True, exist_ok=True)
        (lower / path).write_bytes(data)
    (upper / "etc").mkdir(parents=True)
    (upper / "etc/passwd").write_bytes(b"root\nme")
    (upper / "etc/hosts").write_bytes(b"127.0.0.1")  # the runtime's: not a change
    (upper / "new").mkdir()
    (upper / "new/file").write_bytes(b"hi")
    os.mknod(upper / "etc/gone", 0o600 | 0o020000, os.makedev(0, 0))  # a whiteout
    entries = {rel: layer for rel, layer, _ in overlay_tree.merged([str(upper), str(lower)])}
    assert sorted(entries) == ["bin", "bin/sh", "etc", "etc/hosts", "etc/passwd", "new", "new/file"]
    assert entries["etc/passwd"] == str(upper) and entries["bin/sh"] == str(lower)

    class Store:  # the runtime's record, as changes() reads it
        def read_record(self, cid):
            return {"lower": [str(lower)]}

        def paths(self, cid):
            return type("P", (), {"upper": upper})()

    rt = type("Rt", (), {"store": Store()})()
    monkeypatch.setattr(files_ops, "state_of", lambda rt, c: {"id": "x"})
    found = files_ops.changes(rt, None, {})["changes"]
    assert found == [
        {"Path": "/etc", "Kind": 0},
        {"Path": "/etc/gone", "Kind": 2},
        {"Path": "/etc/passwd", "Kind": 0},
        {"Path": "/new", "Kind": 1},
        {"Path": "/new/file", "Kind": 1},
    ]


def test_update_checks_maxima_and_quotas_then_queues_the_limits(docker, mine, teams):
    # Created within the developer role's maxima (CPU and pids are capped, as on a create).
    limits = {"memory": 256 << 20, "cpu_quota": 100000, "cpu_period": 100000, "pids": 512}
    Container.objects.filter(pk=mine["alpha"].pk).update(
        spec={**mine["alpha"].spec, "limits": limits}
    )
    client = docker("developer")
    body = {"Memory": 64 << 20, "CpuShares": 0, "RestartPolicy": {"Name": ""}, "Ulimits": None}
    answer = client.post(f"{V}/containers/tp-x-a/update", body, content_type="application/json")
    assert answer.status_code == 200 and answer.json() == {"Warnings": []}, answer.content
    mine["alpha"].refresh_from_db()
    assert mine["alpha"].spec["limits"]["memory"] == 64 << 20
    op = Operation.objects.get(kind="container.update")
    assert op.params["limits"]["memory"] == 64 << 20
    pids = {"PidsLimit": 100000}
    capped = client.post(f"{V}/containers/tp-x-a/update", pids, content_type="application/json")
    assert capped.status_code == 403 and "pids: 100000 asked" in capped.json()["message"]
    restart = {"RestartPolicy": {"Name": "always"}}
    refused = client.post(f"{V}/containers/tp-x-a/update", restart, content_type="application/json")
    assert refused.status_code == 501 and "RestartPolicy" in refused.json()["message"]
    # A running container's new limits count against the team's quota (the change only).
    Container.objects.filter(pk=mine["alpha"].pk).update(desired_state="running")
    teams["alpha"].quotas = {"memory": 100 << 20}
    teams["alpha"].save()
    big = {"Memory": 200 << 20}
    over = client.post(f"{V}/containers/tp-x-a/update", big, content_type="application/json")
    assert over.status_code == 403 and "quota" in over.json()["message"]
    assert AuditEvent.objects.filter(action="container.change", outcome="denied").exists()
    other = client.post(f"{V}/containers/tp-x-b/update", body, content_type="application/json")
    assert other.status_code == 404


def test_cp_from_a_stopped_containers_layers(tmp_path, settings):
    from agent import files_ops, overlay_tree

    settings.DATA_DIR = tmp_path / "data"  # the archive is written to its exports directory

    lower, upper = tmp_path / "lower", tmp_path / "upper"
    for path, data in {"etc/passwd": b"root", "data/old": b"old", "data/kept": b"k"}.items():
        (lower / path).parent.mkdir(parents=True, exist_ok=True)
        (lower / path).write_bytes(data)
    (lower / "link").symlink_to("/data")  # an absolute link stays inside the layers
    (upper / "data").mkdir(parents=True)
    (upper / "data/new").write_bytes(b"new")
    os.mknod(upper / "data/old", 0o600 | 0o020000, os.makedev(0, 0))  # deleted in the upper
    layers = [str(upper), str(lower)]
    _, full, st = overlay_tree.layered_entry(layers, "/link/new")
    assert full == str(upper / "data/new") and st.st_size == 3
    with pytest.raises(files_ops.NotFound):
        overlay_tree.layered_entry(layers, "/data/old")
    with pytest.raises(files_ops.NotFound):
        overlay_tree.layered_entry(layers, "/../../etc/shadow")
    token = "0" * 32
    result = files_ops._layered_archive(layers, "/link/../data", {"out": token})
    archive = files_ops.output_path(token)
    assert archive.stat().st_size == result["size"]
    with tarfile.open(archive) as tar:
        assert sorted(tar.getnames()) == ["data", "data/kept", "data/new"]
        assert tar.extractfile("data/new").read() == b"new"
    assert result["stat"]["name"] == "data" and result["stat"]["mode"] & (1 << 31)


def test_upload_through_a_link_in_the_container_stays_inside(tmp_path):
    """A link in the container to an absolute host path, or up with .., never leaves it."""
    from agent import files_put

    root, outside = tmp_path / "root", tmp_path / "outside"
    (root / "tmp").mkdir(parents=True)
    outside.mkdir()
    (root / "tmp" / "abs").symlink_to(str(outside))
    (root / "tmp" / "up").symlink_to("../../../outside")
    (root / "tmp" / "file").symlink_to(str(outside / "victim"))
    members = [
        _member("abs/a.txt", data=b"a")[0],
        _member("up/b.txt", data=b"b")[0],
        _member("file", data=b"c")[0],
    ]
    body = _tar(
        *[(m, d) for m, d in zip(members, (b"a", b"b", b"c"), strict=True)],
    )
    with tarfile.open(fileobj=io.BytesIO(body)) as tar:
        dest = os.open(root / "tmp", os.O_PATH | os.O_DIRECTORY)
        try:
            plan = files_put._plan(
                tar.getmembers(), False, lambda relative: files_put._is_dir_at(dest, relative)
            )
            for member, relative in plan:
                files_put._write(tar, dest, member, relative)
        finally:
            os.close(dest)
    assert list(outside.iterdir()) == []  # nothing reached the host's directory
    # Links met while extracting resolve with the target directory as their root.
    assert (root / "tmp" / str(outside).lstrip("/") / "a.txt").read_bytes() == b"a"
    assert (root / "tmp" / "outside" / "b.txt").read_bytes() == b"b"
    assert not (root / "tmp" / "file").is_symlink()  # the link was replaced, not followed
    assert (root / "tmp" / "file").read_bytes() == b"c"


def test_upload_into_a_stopped_containers_upper_layer(tmp_path):
    """Directories on the way copied up with their owner and mode; a directory that replaces a
    whiteout is opaque (what was deleted below stays hidden); nothing lands in a lower layer."""
    from agent import files_put, overlay_tree

    lower, upper = tmp_path / "lower", tmp_path / "upper"
    (lower / "srv" / "old").mkdir(parents=True)
    (lower / "srv" / "old" / "gone.txt").write_bytes(b"g")
    os.chown(lower / "srv", 1000, 1000)
    os.chmod(lower / "srv", 0o750)
    upper.mkdir()
    layers = [str(upper), str(lower)]
    files_put._copy_up(layers, "srv")
    st = os.stat(upper / "srv")
    assert (st.st_uid, st.st_gid, st.st_mode & 0o777) == (1000, 1000, 0o750)
    os.mknod(upper / "srv" / "old", 0o600 | 0o020000, os.makedev(0, 0))  # deleted in the upper
    body = _tar(_member("old", tarfile.DIRTYPE), _member("old/new.txt", data=b"n"))
    with tarfile.open(fileobj=io.BytesIO(body)) as tar:
        dest = os.open(upper / "srv", os.O_PATH | os.O_DIRECTORY)
        try:
            for member, relative in files_put._plan(tar.getmembers(), False, lambda r: None):
                files_put._write(tar, dest, member, relative, layered=True)
        finally:
            os.close(dest)
    assert (upper / "srv" / "old" / "new.txt").read_bytes() == b"n"
    assert os.getxattr(upper / "srv" / "old", "trusted.overlay.opaque") == b"y"
    assert os.getxattr(upper / "srv" / "old", "user.overlay.opaque") == b"y"
    names = [rel for rel, _, _ in overlay_tree.merged(layers)]
    assert "srv/old/new.txt" in names and "srv/old/gone.txt" not in names
    assert sorted(os.listdir(lower / "srv" / "old")) == ["gone.txt"]


def test_the_agent_takes_only_its_own_archive_names(tmp_path, settings):
    """The files a call names are checked on the host: 32 hex digits for an output, a `cp-`
    upload of UPLOAD_DIR (no path, no link) for an input."""
    from agent import files_ops, files_put

    settings.DATA_DIR, settings.UPLOAD_DIR = tmp_path / "data", tmp_path / "uploads"
    settings.UPLOAD_DIR.mkdir()
    for bad in ("../x", "A" * 32, "0" * 31, None, "0" * 32 + "/.."):
        with pytest.raises(files_ops.InvalidSpec):
            files_ops.output_path(bad)
    good = "cp-" + "0" * 32 + ".tar"
    for bad in ("../" + good, "/etc/passwd", "x.tar", None):
        with pytest.raises(files_ops.InvalidSpec):
            files_put.upload_path(bad)
    with pytest.raises(files_ops.NotFound):
        files_put.upload_path(good)
    (settings.UPLOAD_DIR / good).symlink_to("/etc/passwd")
    with pytest.raises(files_ops.NotFound):
        files_put.upload_path(good)
