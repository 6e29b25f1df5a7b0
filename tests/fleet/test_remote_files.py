"""Uploads and downloads for a host that does not share the web's data directory (issue 9):
host b of the fleet runs as a joined machine would, with a data directory of its own. Its
agent fetches uploads from the web and pushes what it writes for the web over the transfer
endpoint (transfers/files.py, agent/remote_files.py), each file named to it by its operation
or signed call: a `docker save` and an image import, and a `docker cp` in and out."""

import io
import json
import shutil
import subprocess
import tarfile
import textwrap
import urllib.request
import uuid

import pytest

from tests.e2e.conftest import PY, REPO

pytestmark = [pytest.mark.e2e, pytest.mark.root]


@pytest.fixture(scope="module")
def joined(fleet):
    """Host b with a data directory of its own: its identity file (what `berth-agent --join`
    writes), no control-plane key, no uploads or exports of the web's. The database stands in
    for the network database a joined machine names in DATABASE_URL: the fleet's SQLite file,
    through a link (SQLite resolves it: one file, one journal, one lock)."""
    b = fleet.hosts[1]
    data = b.base / "data"
    (data / "agents").mkdir(parents=True)
    shutil.copy2(fleet.data_dir / "agents" / f"{b.name}.json", data / "agents")
    (data / "berth.sqlite3").symlink_to(fleet.db_path)
    fleet.kill_agent(b)
    b.env = dict(b.env, BERTH_DATA_DIR=str(data))
    fleet.start_agent(b)
    return b


def _multipart(url, token, fields: dict, file_field: str, payload: bytes):
    boundary = uuid.uuid4().hex
    parts = []
    for key, value in fields.items():
        parts.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{key}"\r\n\r\n{value}\r\n'
        )
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="{file_field}"; '
        'filename="image.tar"\r\nContent-Type: application/x-tar\r\n\r\n'
    )
    body = "".join(parts).encode() + head.encode() + payload + f"\r\n--{boundary}--\r\n".encode()
    request = urllib.request.Request(
        url,
        data=body,
        method="POST",
        headers={
            "Authorization": f"Bearer {token}",
            "Content-Type": f"multipart/form-data; boundary={boundary}",
        },
    )
    with urllib.request.urlopen(request, timeout=90) as response:
        return json.loads(response.read())


def _download(fleet, path) -> bytes:
    request = urllib.request.Request(
        f"{fleet.web_url}/api/v1/{path}", headers={"Authorization": f"Bearer {fleet.token}"}
    )
    with urllib.request.urlopen(request, timeout=90) as response:
        return response.read()


def _images(fleet, host) -> list[dict]:
    [(host_id,)] = fleet.sql("SELECT id FROM hosts_host WHERE name = ?", host.name)
    _, images = fleet.api("GET", f"images/?host={host_id}&page_size=200", expect=200)
    return images["results"] if isinstance(images, dict) else images


def test_save_and_import_through_the_web(fleet, joined):
    def busybox():
        # The host's image rows follow its store once its agent has looked (boot, reconcile).
        rows = _images(fleet, joined)
        return next((r for r in rows if any("busybox" in t for t in r["repo_tags"] or [])), None)

    fleet.wait_until(busybox, 30, "the busybox image's row on the joined host")
    busybox = busybox()
    # docker save: the agent writes the archive in its own data directory and pushes it.
    _, out = fleet.api("POST", f"images/{busybox['id']}/save/?wait=60", {}, expect=200)
    op = out.get("operation", out)
    assert op["state"] == "succeeded", op
    archive = _download(fleet, f"images/{busybox['id']}/save/?operation={op['id']}")
    assert len(archive) > 100_000
    assert not list((joined.base / "data" / "exports").glob("*.tar"))  # handed over, gone
    # Import it under a new name: the agent fetches the upload named by its operation.
    answer = _multipart(
        f"{fleet.web_url}/api/v1/images/import/?wait=60",
        fleet.token,
        {"ref": "remote/imported:1", "host": joined.name, "team": fleet.team},
        "file",
        archive,
    )
    op = answer.get("operation", answer)
    assert op["state"] == "succeeded", op
    rows = _images(fleet, joined)
    assert any("remote/imported:1" in (r.get("repo_tags") or []) for r in rows)
    # Fetched once and deleted on both sides; every hand-over audited.
    assert not list((fleet.data_dir / "uploads").glob("*.tar"))
    assert not list((joined.base / "data" / "uploads").glob("*.tar"))
    events = fleet.sql(
        "SELECT action, outcome FROM audit_auditevent WHERE action LIKE 'transfer.%'"
    )
    assert ("transfer.push", "allowed") in events and ("transfer.fetch", "allowed") in events


def _web_code(fleet, code: str) -> str:
    result = subprocess.run(
        [str(PY), "manage.py", "shell", "-c", textwrap.dedent(code)],
        cwd=REPO,
        env=fleet.env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout.strip().splitlines()[-1]


def test_copy_in_and_out_of_a_container(fleet, joined):
    body = {
        "team": fleet.team,
        "host": joined.name,
        "spec": {
            "image": "busybox",
            "name": "remote-cp",
            "command": ["sh", "-c", "exec sleep 100000"],
            "network": {"mode": "none"},
        },
    }
    status, out = fleet.api("POST", "containers/?wait=60", body)
    assert status == 200 and out["operation"]["state"] == "succeeded", out
    # What the Docker API's `docker cp` does on the web (dockerapi/archive.py): an upload in
    # the web's UPLOAD_DIR named in a signed call, then an archive the host writes for the web.
    code = f"""
        import io, json, tarfile, uuid
        from django.conf import settings
        from accounts.models import User
        from containers.models import Container
        from operations import dispatch
        from rbac import gate
        from registries.progress import exports_dir
        c = Container.objects.get(pk={out["container"]["id"]})
        admin = User.objects.get(username="admin")
        d = gate.authorize(admin, "container.exec", c, options={{"user": "0"}})
        claims = dispatch.decision_claims(d, object_id=c.pk, root_allowed=True)
        data = b"hello from the web"
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tar:
            info = tarfile.TarInfo("greeting.txt"); info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        settings.UPLOAD_DIR.mkdir(parents=True, exist_ok=True)
        name = f"cp-{{uuid.uuid4().hex}}.tar"
        (settings.UPLOAD_DIR / name).write_bytes(buf.getvalue())
        args = [c.pk, "put", {{"path": "/tmp", "upload": name}}]
        dispatch.call_host(c.host, "agent.container_files", args, timeout=60, decision=claims)
        (settings.UPLOAD_DIR / name).unlink(missing_ok=True)
        token = uuid.uuid4().hex
        args = [c.pk, "get", {{"path": "/tmp/greeting.txt", "out": token}}]
        dispatch.call_host(c.host, "agent.container_files", args, timeout=60, decision=claims)
        path = exports_dir() / f"files-{{token}}.tar"
        with tarfile.open(path) as tar:
            got = tar.extractfile("greeting.txt").read().decode()
        path.unlink()
        # A second fetch of an upload, or one the call does not name, is refused.
        print(json.dumps({{"got": got, "left": sorted(p.name for p in settings.UPLOAD_DIR.iterdir())}}))
    """
    result = json.loads(_web_code(fleet, code))
    assert result["got"] == "hello from the web"
    assert not [n for n in result["left"] if n.startswith("cp-")]
    assert not list((joined.base / "data" / "uploads").glob("cp-*"))
    assert not list((joined.base / "data" / "exports").glob("files-*"))


def _context_tar() -> bytes:
    buf = io.BytesIO()
    files = {"Dockerfile": b"FROM busybox\nCOPY app /app\n", "app": b"built on host b\n"}
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def test_compliance_rebuild_of_an_image_built_on_the_joined_host(fleet, joined):
    """The recipe of a build on a host with a data directory of its own is recorded there,
    with its context kept there; the rebuild (compliance/recipes.py) names the context by its
    digest and that host's agent restores it from its keep (agent/remote_files.py)."""
    answer = _multipart(
        f"{fleet.web_url}/api/v1/images/build/?wait=90",
        fleet.token,
        {"tag": "remote/rebuilt:1", "host": joined.name, "team": fleet.team},
        "context",
        _context_tar(),
    )
    op = answer.get("operation", answer)
    assert op["state"] == "succeeded", op
    _, listed = fleet.api("GET", "compliance/recipes/?tag=remote/rebuilt:1", expect=200)
    [recipe] = listed["results"]
    kept_name = recipe["context_digest"].partition(":")[2] + ".tar"
    host_keep = joined.base / "data" / "uploads" / "recipes"
    assert (host_keep / kept_name).is_file()
    assert not (fleet.data_dir / "uploads" / "recipes" / kept_name).exists()

    _, rebuilt = fleet.api("POST", f"compliance/recipes/{recipe['id']}/rebuild/", {}, expect=200)
    assert rebuilt["image_id"]
    _, listed = fleet.api("GET", "compliance/recipes/?tag=remote/rebuilt:1", expect=200)
    assert len(listed["results"]) == 2  # the rebuild recorded its own recipe, same context
    assert {r["context_digest"] for r in listed["results"]} == {recipe["context_digest"]}
    for uploads in (fleet.data_dir / "uploads", joined.base / "data" / "uploads"):
        assert not list(uploads.glob("recipe-*")) and not list(uploads.glob("context-*"))

    # A context the host no longer keeps: a clear refusal, nothing left behind.
    (host_keep / kept_name).unlink()
    status, refused = fleet.api("POST", f"compliance/recipes/{recipe['id']}/rebuild/", {})
    assert status == 409 and "no longer kept" in json.dumps(refused), refused
    assert not list((joined.base / "data" / "uploads").glob("*recipe-*"))
