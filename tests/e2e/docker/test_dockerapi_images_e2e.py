"""Images through Berth's Docker API with the real docker CLI and the docker Python SDK.

`docker build` (the plain CLI: /_ping says `Builder-Version: 1`, so it uses the classic
builder's protocol without DOCKER_BUILDKIT=0) twice with the cache, tag, history, rmi of an
image in use refused, save, rmi, load and run; a bad context refused with nothing queued; the
SDK building and pushing to and pulling from a local docker-registry that Berth knows.
A developer builds and runs; removing, saving and pushing images need an admin's token.
"""

import io
import json
import shutil
import tarfile
import urllib.error
import urllib.request

import pytest

from tests.registry.registry_helpers import REGISTRY_BIN, RegistryServer

pytestmark = pytest.mark.skipif(shutil.which("docker") is None, reason="no docker CLI")

DOCKERFILE = """FROM busybox
COPY hello.txt /hello.txt
RUN cat /hello.txt > /copy.txt
CMD ["cat", "/copy.txt"]
"""


@pytest.fixture(scope="module")
def admin_dock(dock, web, tmp_path_factory):
    """run(...) like `dock`, with the admin's token."""
    import subprocess

    config = tmp_path_factory.mktemp("docker-admin")
    (config / "config.json").write_text(
        json.dumps({"HttpHeaders": {"Authorization": f"Bearer {web.token}"}})
    )
    env = dict(dock.env, DOCKER_CONFIG=str(config), HOME=str(config))

    def run(*args, check=True, timeout=90):
        result = subprocess.run(
            ["docker", *args], env=env, capture_output=True, text=True, timeout=timeout
        )
        if check and result.returncode != 0:
            pytest.fail(f"docker {' '.join(args)}: {result.returncode}\n{result.stderr}")
        return result

    run.env = env
    return run


@pytest.fixture(scope="module")
def build_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("dk-context")
    (folder / "Dockerfile").write_text(DOCKERFILE)
    (folder / "hello.txt").write_text("hello from a berth build\n")
    return folder


def _ops(web, kind: str) -> int:
    return web.sql("SELECT COUNT(*) FROM operations_operation WHERE kind = ?", kind)[0][0]


def test_build_twice_tag_history_rmi_save_load_and_run(dock, admin_dock, web, build_dir):
    first = dock("build", "-t", "dkimg:1", str(build_dir), timeout=120)
    out = first.stdout + first.stderr
    assert "Step 1/4 : FROM busybox" in out and "Successfully built" in out, out
    image_id = json.loads(dock("inspect", "dkimg:1").stdout)[0]["Id"]
    again = dock("build", "-t", "dkimg:1", str(build_dir), timeout=120)
    assert again.stdout.count("Using cache") == 3, again.stdout
    assert json.loads(dock("inspect", "dkimg:1").stdout)[0]["Id"] == image_id
    quiet = dock("build", "-q", "-t", "dkimg:1", "-t", "dkimg:q", str(build_dir), timeout=120)
    assert quiet.stdout.strip() == image_id

    dock("tag", "dkimg:1", "dkimg:2")
    tags = dock("images", "--format", "{{.Repository}}:{{.Tag}}").stdout.split()
    assert {"dkimg:1", "dkimg:2", "dkimg:q"} <= set(tags)
    history = dock("history", "--no-trunc", "--format", "{{.CreatedBy}}", "dkimg:1").stdout
    assert "RUN cat /hello.txt > /copy.txt" in history and "COPY hello.txt" in history
    # Removing is not a developer's permission (as on the REST API).
    refused = dock("rmi", "dkimg:2", check=False)
    assert refused.returncode != 0 and "image.delete" in refused.stderr

    user = dock("run", "-d", "--name", "dk-img-user", "dkimg:1", "sleep", "1000").stdout.strip()
    try:
        untagged = admin_dock("rmi", "dkimg:2", "dkimg:q").stdout
        assert "Untagged: dkimg:2" in untagged and "Untagged: dkimg:q" in untagged
        assert "Deleted" not in untagged
        in_use = admin_dock("rmi", "dkimg:1", check=False)
        assert in_use.returncode != 0 and "conflict" in in_use.stderr and "in use" in in_use.stderr
    finally:
        dock("rm", "-f", user)

    archive = build_dir.parent / "dkimg.tar"
    admin_dock("save", "-o", str(archive), "dkimg:1")
    with tarfile.open(archive) as tar:
        manifest = json.load(tar.extractfile("manifest.json"))
    assert manifest[0]["RepoTags"] == ["dkimg:1"]
    removed = admin_dock("rmi", "dkimg:1").stdout
    assert "Deleted: " + image_id in removed
    assert dock("images", "-q", "dkimg").stdout.strip() == ""
    # A developer may load (image.import): the image is their team's again.
    loaded = dock("load", "-i", str(archive)).stdout
    assert "Loaded image: dkimg:1" in loaded
    ran = dock("run", "--rm", "dkimg:1")
    assert ran.stdout == "hello from a berth build\n"
    admin_dock("rmi", "dkimg:1")


def _post_context(dock, body: bytes):
    request = urllib.request.Request(
        dock.env["DOCKER_HOST"].replace("tcp://", "http://") + "/v1.47/build?t=dkbad:1",
        data=body,
        method="POST",
        headers={"Authorization": f"Bearer {dock.token}", "Content-Type": "application/x-tar"},
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def test_a_bad_context_is_refused_with_nothing_queued(dock, web):
    before = _ops(web, "image.build")
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        for name, data in (("Dockerfile", b"FROM busybox\n"), ("../../etc/cron.d/x", b"x")):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    status, body = _post_context(dock, out.getvalue())
    assert status == 400 and "outside the context" in json.loads(body)["message"]
    status, body = _post_context(dock, b"not a tar " * 100)
    assert status == 400 and "not a tar archive" in json.loads(body)["message"]
    assert _ops(web, "image.build") == before
    uploads = web.data_dir / "uploads"
    assert not uploads.exists() or not [p for p in uploads.iterdir() if "context" in p.name]


@pytest.fixture(scope="module")
def local_registry(web, tmp_path_factory):
    """A docker-registry on 127.0.0.1 that Berth has (insecure: plain HTTP)."""
    if REGISTRY_BIN is None:
        pytest.skip("docker-registry is not installed")
    server = RegistryServer(tmp_path_factory.mktemp("dk-registry"))
    try:
        web.api(
            "POST",
            "registries/",
            {"name": "dk-local", "address": server.host, "insecure": True},
            expect=201,
        )
        yield server
    finally:
        server.stop()


def test_the_sdk_builds_pushes_and_pulls(admin_dock, local_registry, monkeypatch):
    docker = pytest.importorskip("docker")
    monkeypatch.setenv("DOCKER_CONFIG", admin_dock.env["DOCKER_CONFIG"])
    client = docker.DockerClient(
        base_url=admin_dock.env["DOCKER_HOST"], version="auto", timeout=120
    )
    name = f"{local_registry.host}/team/sdk"
    context = io.BytesIO(b'FROM busybox\nLABEL made.by="sdk"\n')
    image, logs = client.images.build(fileobj=context, tag=f"{name}:1", labels={"x": "y"})
    assert any("Step 1/" in (entry.get("stream") or "") for entry in logs)
    assert image.labels == {"made.by": "sdk", "x": "y"}
    lines = list(client.images.push(name, tag="1", stream=True, decode=True))
    assert any("digest: sha256:" in (entry.get("status") or "") for entry in lines), lines
    assert not any("error" in entry for entry in lines), lines
    client.images.remove(f"{name}:1")
    pulled = client.images.pull(name, tag="1")
    assert pulled.id == image.id and f"{name}:1" in pulled.tags
    missing = pytest.raises(docker.errors.APIError)
    with missing as err:
        client.images.pull(name, tag="no-such-tag")
    assert "no-such-tag" in str(err.value) or "not found" in str(err.value).lower()
    client.images.remove(f"{name}:1")


def _tiny_rootfs(folder) -> str:
    """A one-file root filesystem tar (for `docker import`: an image without a pull)."""
    path = folder / "rootfs.tar"
    with tarfile.open(path, "w") as tar:
        info = tarfile.TarInfo("hello.txt")
        info.size = 3
        tar.addfile(info, io.BytesIO(b"hi\n"))
    return str(path)


def test_save_of_several_images_into_one_archive_and_builder_prune(
    dock, admin_dock, web, build_dir
):
    dock("import", _tiny_rootfs(build_dir.parent), "dksave:1")
    try:
        archive = build_dir.parent / "two.tar"
        admin_dock("save", "-o", str(archive), "busybox", "dksave:1")
        with tarfile.open(archive) as tar:
            manifest = json.load(tar.extractfile("manifest.json"))
            names = set(tar.getnames())
        assert sorted(t for entry in manifest for t in entry["RepoTags"]) == [
            "busybox:latest",
            "dksave:1",
        ]
        assert all(entry["Config"] in names for entry in manifest)
        assert all(layer in names for entry in manifest for layer in entry["Layers"])
        exports = web.data_dir / "exports"
        assert not exports.exists() or not list(exports.iterdir())  # every part deleted
    finally:
        admin_dock("rmi", "dksave:1", check=False)

    # The build cache (the first test's steps: its image is gone): CachesDeleted, audited.
    pruned = admin_dock("builder", "prune", "-f").stdout
    assert "Total reclaimed space" in pruned, pruned
    rows = web.sql(
        "SELECT state, result FROM operations_operation WHERE kind = 'image.prune' "
        "AND params LIKE '%cache_only%' ORDER BY id DESC LIMIT 1"
    )
    assert rows and rows[0][0] == "succeeded" and "entries" in json.loads(rows[0][1])
    refused = dock("builder", "prune", "-f", check=False)  # not a developer's permission
    assert refused.returncode != 0 and "image.prune" in refused.stderr


def test_team_image_quota_refuses_docker_pull_build_load_and_import(dock, web, build_dir):
    team = web.sql("SELECT id FROM accounts_team WHERE name = 'e2e'")[0][0]
    used = web.api("GET", f"teams/{team}/usage/", expect=200)[1]["usage"]["images"]
    web.api("PUT", f"teams/{team}/quotas/", {"quotas": {"images": used}}, expect=200)
    before = web.sql("SELECT COUNT(*) FROM operations_operation")[0][0]
    saved = build_dir.parent / "fake-save.tar"
    with tarfile.open(saved, "w") as tar:
        data = json.dumps([{"Config": "x.json", "RepoTags": ["dkq/load:1"], "Layers": []}])
        info = tarfile.TarInfo("manifest.json")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data.encode()))
    try:
        message = f"images: team e2e's quota is {used}, {used} in use, this asks 1 more"
        for args in (
            ("pull", "dkq/pull:1"),
            ("build", "-t", "dkq/build:1", str(build_dir)),
            ("load", "-i", str(saved)),
            ("import", _tiny_rootfs(build_dir.parent), "dkq/import:1"),
        ):
            refused = dock(*args, check=False)
            assert refused.returncode != 0 and message in refused.stderr, (args, refused.stderr)
    finally:
        web.api("PUT", f"teams/{team}/quotas/", {"quotas": {}}, expect=200)
    assert web.sql("SELECT COUNT(*) FROM operations_operation")[0][0] == before
    denied = web.sql(
        "SELECT COUNT(*) FROM audit_auditevent WHERE outcome = 'denied' AND reason LIKE ?",
        f"%{message}%",
    )[0][0]
    assert denied == 4
    uploads = web.data_dir / "uploads"
    assert not uploads.exists() or not [p for p in uploads.iterdir() if p.is_file()]
