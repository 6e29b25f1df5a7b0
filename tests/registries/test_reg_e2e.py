"""End to end: the REST API, the real host agent and a real docker-registry on 127.0.0.1."""

import io
import json
import tarfile
import urllib.error
import urllib.request
import uuid

import pytest
from registry_helpers import (
    REGISTRY_BIN,
    SKOPEO,
    TEST_PASSWORD,
    TEST_USER,
    make_oci_layout,
    skopeo,
)

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.root,
    pytest.mark.skipif(
        REGISTRY_BIN is None or SKOPEO is None, reason="apt-get install docker-registry skopeo"
    ),
]


def _push_layout(tmp_path, target, layers, creds=None):
    layout = tmp_path / uuid.uuid4().hex[:8]
    info = make_oci_layout(layout, layers)
    args = ["copy", "--dest-tls-verify=false"]
    if creds:
        args += ["--dest-creds", creds]
    skopeo(*args, f"oci:{layout}:latest", f"docker://{target}")
    return info


def _finished(payload) -> dict:
    op = payload["operation"]
    assert op["state"] == "succeeded", op
    return op


def test_pull_through_the_api_with_progress(web, registry, tmp_path):
    layers = [{"a.txt": b"a" * 300_000}, {"b/b.txt": b"b" * 200_000}, {"c": b"c"}]
    info = _push_layout(tmp_path, f"{registry.host}/tr/demo:1", layers)
    ref = f"{registry.host}/tr/demo:1"
    status, body = web.api(
        "POST", "images/pull/?wait=60", {"ref": ref, "host": web.host}, timeout=90
    )
    assert status == 200, body
    op = _finished(body)
    assert op["result"]["image_id"] == info["config_digest"]
    assert sorted(op["result"]["downloaded"]) == sorted(d["digest"] for d in info["layers"])

    _, progress = web.api("GET", body["progress"].removeprefix("/api/v1/"), expect=200)
    by_id = {layer["id"]: layer for layer in progress["layers"]}
    for desc in info["layers"]:
        assert by_id[desc["digest"]]["percent"] == 100.0
        assert by_id[desc["digest"]]["total"] == desc["size"]

    _, images = web.api("GET", f"images/?image_id={info['config_digest']}", expect=200)
    assert images["results"][0]["repo_tags"] == [ref]

    # Again: nothing downloaded. By digest: the same image.
    _, again = web.api("POST", "images/pull/?wait=60", {"ref": ref, "host": web.host}, expect=200)
    assert _finished(again)["result"]["downloaded"] == []
    by_digest = f"{registry.host}/tr/demo@{op['result']['digest']}"
    _, digest = web.api(
        "POST", "images/pull/?wait=60", {"ref": by_digest, "host": web.host}, expect=200
    )
    assert _finished(digest)["result"]["image_id"] == info["config_digest"]


def test_pull_of_an_unknown_tag_fails_clearly(web, registry):
    ref = f"{registry.host}/tr/nothing:here"
    _, body = web.api("POST", "images/pull/?wait=60", {"ref": ref, "host": web.host}, expect=200)
    op = body["operation"]
    assert op["state"] == "failed" and "nothing" in op["error"]


def test_pull_and_search_with_stored_credentials(web, token_registry, tmp_path):
    _push_layout(
        tmp_path,
        f"{token_registry.host}/auth/app:1",
        [{"x": b"secret layer"}],
        creds=f"{TEST_USER}:{TEST_PASSWORD}",
    )
    name = "tr-" + uuid.uuid4().hex[:6]
    _, reg = web.api(
        "POST",
        "registries/",
        {"name": name, "address": token_registry.host, "username": TEST_USER, "password": "wrong"},
        expect=201,
    )
    # Stored encrypted, in the very database the agent reads.
    raw = web.sql("SELECT password_encrypted FROM registries_registry WHERE id = ?", reg["id"])
    assert raw[0][0] and "wrong" not in raw[0][0]
    body = {"ref": "auth/app:1", "registry": name, "host": web.host}
    _, refused = web.api("POST", "images/pull/?wait=60", body, expect=200)
    assert refused["operation"]["state"] == "failed"
    assert TEST_USER in refused["operation"]["error"] or "auth" in refused["operation"]["error"]

    web.api("PATCH", f"registries/{reg['id']}/", {"password": TEST_PASSWORD}, expect=200)
    _, pulled = web.api("POST", "images/pull/?wait=60", body, expect=200)
    assert _finished(pulled)["result"]["repo_tags"] == [f"{token_registry.host}/auth/app:1"]

    search = {"registry": name, "term": "app", "tags": True, "host": web.host}
    _, found = web.api("POST", "images/search/?wait=60", search, expect=200)
    results = _finished(found)["result"]["results"]
    assert {"name": f"{token_registry.host}/auth/app", "tags": ["1"]}.items() <= results[0].items()


def _multipart(fields: dict, files: dict) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    out = io.BytesIO()
    for name, value in fields.items():
        out.write(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'.encode())
        out.write(f"{value}\r\n".encode())
    for name, (filename, data) in files.items():
        out.write(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; '
            f'filename="{filename}"\r\nContent-Type: application/x-tar\r\n\r\n'.encode()
        )
        out.write(data + b"\r\n")
    out.write(f"--{boundary}--\r\n".encode())
    return out.getvalue(), f"multipart/form-data; boundary={boundary}"


def _raw(web, method, path, data=None, content_type=None):
    request = urllib.request.Request(
        f"http://127.0.0.1:{web.web_port}/api/v1/{path}",
        data=data,
        method=method,
        headers={"Authorization": f"Bearer {web.token}"}
        | ({"Content-Type": content_type} if content_type else {}),
    )
    try:
        with urllib.request.urlopen(request, timeout=180) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def _context(dockerfile: str, files: dict) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in {"Dockerfile": dockerfile.encode(), **files}.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def test_build_twice_hits_the_cache_then_save_push_and_prune(web, registry):
    dockerfile = "FROM busybox\nCOPY hello /hello\nRUN cat /hello > /copy\nCMD cat /copy\n"
    context = _context(dockerfile, {"hello": b"hi from tr\n"})
    tag = "tr/built:" + uuid.uuid4().hex[:6]
    results = []
    for _ in range(2):
        data, ctype = _multipart({"tag": tag, "host": web.host}, {"context": ("c.tar", context)})
        status, raw = _raw(web, "POST", "images/build/?wait=120", data, ctype)
        body = json.loads(raw)
        assert status == 200, body
        results.append(body)
    first, second = (_finished(b)["result"] for b in results)
    assert first["image_id"] == second["image_id"]
    assert second["cached_steps"] == len(second["steps"]) >= 3
    assert first["cached_steps"] < len(first["steps"])
    _, progress = web.api("GET", results[0]["progress"].removeprefix("/api/v1/"), expect=200)
    assert progress["log"], "the build log reached the progress row"

    row = first["row"]
    _, history = web.api("GET", f"images/{row}/history/", expect=200)
    assert any("cat /hello" in h["created_by"] for h in history["history"])
    _, save = web.api("POST", f"images/{row}/save/?wait=60", expect=200)
    op = _finished(save)
    status, archive = _raw(web, "GET", f"images/{row}/save/?operation={op['id']}")
    assert status == 200
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        manifest = json.load(tar.extractfile("manifest.json"))
    assert manifest[0]["RepoTags"] == [f"{tag}"] or tag in manifest[0]["RepoTags"][0]
    # The same image as an OCI image layout.
    _, save = web.api("POST", f"images/{row}/save/?layout=oci&wait=60", expect=200)
    op = _finished(save)
    status, archive = _raw(web, "GET", f"images/{row}/save/?operation={op['id']}")
    assert status == 200
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        assert json.load(tar.extractfile("oci-layout"))["imageLayoutVersion"] == "1.0.0"
        index = json.load(tar.extractfile("index.json"))
    assert index["manifests"][0]["annotations"]["io.containerd.image.name"].endswith(tag)

    # Push the built image to the registry; skopeo reads it back from there.
    target = f"{registry.host}/tr/pushed:1"
    _, pushed = web.api("POST", f"images/{row}/push/?wait=60", {"target": target}, expect=200)
    digest = _finished(pushed)["result"]["digest"]
    inspected = json.loads(skopeo("inspect", "--tls-verify=false", f"docker://{target}").stdout)
    assert inspected["Digest"] == digest

    _, pruned = web.api("POST", "images/prune/?wait=60", {"host": web.host}, expect=200)
    assert "removed" in _finished(pruned)["result"]
    _, still = web.api("GET", f"images/{row}/", expect=200)
    assert still["image_id"] == first["image_id"]


def test_a_build_may_not_start_from_another_teams_private_image(web, registry, tmp_path):
    ref = f"{registry.host}/tr/private:{uuid.uuid4().hex[:6]}"
    _push_layout(tmp_path, ref, [{"bin/secret": b"team data\n"}])
    pull = {"ref": ref, "host": web.host, "team": web.team}
    _, pulled = web.api("POST", "images/pull/?wait=60", pull, expect=200)
    _finished(pulled)
    context = _context(f"FROM {ref}\nENV X=1\n", {})
    answers = {}
    for team in ("", web.team):
        fields = {"host": web.host, **({"team": team} if team else {})}
        data, ctype = _multipart(fields, {"context": ("c.tar", context)})
        status, raw = _raw(web, "POST", "images/build/?wait=120", data, ctype)
        assert status == 200, raw
        answers[team] = json.loads(raw)["operation"]
    assert answers[""]["state"] == "failed"
    assert "belongs to another team" in answers[""]["error"]
    assert answers[web.team]["state"] == "succeeded", answers[web.team]


def test_commit_a_running_container(web):
    spec = {
        "image": "busybox",
        "name": "tr-commit-" + uuid.uuid4().hex[:6],
        "command": ["sh", "-c", "echo committed > /made-here; sleep 1000"],
        "network": {"mode": "none"},
    }
    body = {"team": web.team, "host": web.host, "spec": spec}
    _, created = web.api("POST", "containers/?wait=60", body, expect=200)
    assert created["operation"]["state"] == "succeeded", created
    container = created["container"]["id"]
    ref = "tr/committed:" + uuid.uuid4().hex[:6]

    def file_is_there():
        status, out = web.api(
            "POST", f"containers/{container}/exec/", {"command": ["cat", "/made-here"]}
        )
        return status == 200 and "committed" in str(out)

    web.wait_until(file_is_there, 30, "the container to write its file")
    commit = {"container": str(container), "ref": ref, "message": "tr"}
    _, done = web.api("POST", "images/commit/?wait=60", commit, expect=200)
    result = _finished(done)["result"]
    assert result["repo_tags"] == [ref] or ref in result["repo_tags"][0]
    _, history = web.api("GET", f"images/{result['row']}/history/", expect=200)
    assert "commit" in history["history"][0]["created_by"]
    _, image = web.api("GET", f"images/{result['row']}/", expect=200)
    assert image["team"] is not None
    web.api("DELETE", f"containers/{container}/?force=1&wait=60")
