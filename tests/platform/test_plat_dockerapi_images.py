"""The image half of the Docker API (dockerapi/images_*.py) without an agent.

Refusals and translation: malformed names, build contexts that are not tars or leave the
context, device nodes, the size limit (413), another team's images (404) and tags (403), the
REST API's permissions (audited with the client's User-Agent), and nothing queued or left in
the upload directory by a refused call. The streams themselves run in tests/e2e.
"""

import gzip
import io
import json
import tarfile

import pytest
from django.conf import settings
from django.http import JsonResponse
from django.test import Client, override_settings
from dockerapi import images_build, images_common, images_pull
from dockerapi.images_common import check_ref, line

from accounts.models import ApiToken
from audit.models import AuditEvent
from images.models import Image
from operations.models import Operation
from rbac import gate

pytestmark = pytest.mark.django_db
UA = "Docker-Client/28.2.2 (linux)"
V = "/v1.47"
DOCKERFILE = b"FROM busybox\nRUN echo hi\n"


@pytest.fixture(autouse=True)
def no_waiting(monkeypatch, broker):
    """No agent consumes the queue: calls answer once the Operation is queued; a stream
    answers with the queued Operation instead of following it."""
    monkeypatch.setattr(images_common, "WAIT_SECONDS", 0)

    def queued(op, _render, **_options):
        return JsonResponse({"operation": op.pk})

    monkeypatch.setattr(images_build, "follow", queued)
    monkeypatch.setattr(images_pull, "follow", queued)


@pytest.fixture
def docker(users):
    def make(name):
        _, secret = ApiToken.issue(users[name], f"docker-images-{name}")
        return Client(HTTP_AUTHORIZATION=f"Bearer {secret}", HTTP_USER_AGENT=UA)

    return make


@pytest.fixture
def images(teams, host):
    """A public busybox, a private image of alpha and one of beta."""
    return {
        "public": Image.objects.create(
            host=host, image_id="sha256:" + "a" * 64, repo_tags=["busybox:latest"]
        ),
        "alpha": Image.objects.create(
            host=host, team=teams["alpha"], image_id="sha256:" + "c" * 64, repo_tags=["app:1"]
        ),
        "beta": Image.objects.create(
            host=host, team=teams["beta"], image_id="sha256:" + "b" * 64, repo_tags=["secret:1"]
        ),
    }


def tar_of(*members) -> bytes:
    """A tar of (TarInfo, data) pairs; data None for non-files."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        for info, data in members:
            if data is not None:
                info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return out.getvalue()


def entry(name, data=None, **fields):
    info = tarfile.TarInfo(name)
    for key, value in fields.items():
        setattr(info, key, value)
    return info, data


def context(*extra) -> bytes:
    return tar_of(entry("Dockerfile", DOCKERFILE), *extra)


def build(client, body: bytes, **query):
    qs = "&".join(f"{k}={v}" for k, v in query.items())
    return client.post(f"{V}/build?{qs}", body, content_type="application/x-tar")


def uploads() -> set:
    folder = settings.UPLOAD_DIR
    return set(folder.iterdir()) if folder.exists() else set()


def test_reference_names_are_checked_in_dockers_words():
    for good in ("busybox", "busybox:1.36", "localhost:5000/team/app:v1", "a/b@sha256:" + "0" * 64):
        assert check_ref(good) == good
    for bad in ("", "Busy box", "UPPER/app", "app:", "-x", "a" * 600):
        with pytest.raises(Exception, match="invalid reference format"):
            check_ref(bad)
    assert json.loads(line(status="x", id="y")) == {"status": "x", "id": "y"}


def test_build_queues_the_rest_apis_operation_for_the_callers_team(docker, teams, host):
    before = uploads()
    response = build(
        docker("developer"),
        context(entry("app.txt", b"hello")),
        t="tp-app:1",
        buildargs=json.dumps({"V": "s3cr3t-value", "UNSET": None}),
        nocache="1",
        labels=json.dumps({"org.example.team": "alpha"}),
    )
    assert response.status_code == 200, response.content
    op = Operation.objects.get(pk=response.json()["operation"])
    assert (op.kind, op.team, op.host) == ("image.build", teams["alpha"], host)
    params = op.params
    assert params["tag"] == "tp-app:1" and params["build_args"] == {"V": "s3cr3t-value"}
    assert params["no_cache"] is True and params["private"] is True
    # --label becomes a LABEL at the end of the Dockerfile, as Docker's classic builder does.
    with tarfile.open(params["path"]) as tar:
        text = tar.extractfile("Dockerfile").read().decode()
        assert tar.extractfile("app.txt").read() == b"hello"
    assert text.endswith('LABEL "org.example.team"="alpha"\n')
    assert uploads() - before == {settings.UPLOAD_DIR / params["path"].rsplit("/", 1)[1]}
    event = AuditEvent.objects.filter(action="image.build", operation_id=op.pk).get()
    assert event.summary["user_agent"] == UA and event.summary["via"] == "docker-api"
    assert event.summary["query"]["buildargs"] == ["V"]
    assert "s3cr3t" not in json.dumps(event.summary)


@pytest.mark.parametrize(
    "body, words",
    [
        (b"this is not a tar at all" * 40, "not a tar archive"),
        (context(entry("../escape", b"x")), "outside the context"),
        (context(entry("/etc/passwd", b"x")), "outside the context"),
        (context(entry("link", type=tarfile.SYMTYPE, linkname="/etc/shadow")), "points outside"),
        (context(entry("d/link", type=tarfile.SYMTYPE, linkname="../../x")), "points outside"),
        (context(entry("hard", type=tarfile.LNKTYPE, linkname="../x")), "points outside"),
        (context(entry("null", type=tarfile.CHRTYPE, devmajor=1, devminor=3)), "device node"),
        (context(entry("fifo", type=tarfile.FIFOTYPE)), "device node or FIFO"),
        (tar_of(entry("app.txt", b"x")), "Cannot locate specified Dockerfile: Dockerfile"),
    ],
)
def test_bad_build_contexts_are_refused_with_nothing_left(docker, host, body, words):
    before = uploads()
    response = build(docker("developer"), body, t="tp-bad:1")
    assert response.status_code == 400, response.content
    assert words in response.json()["message"]
    assert not Operation.objects.filter(kind="image.build").exists()
    assert uploads() == before


def test_a_context_over_the_limit_is_413_naming_it(docker, host, monkeypatch):
    before = uploads()
    bomb = gzip.compress(context(entry("zeros", b"\0" * 200_000)))
    assert len(bomb) < 4096
    with override_settings(BERTH_DOCKER_MAX_CONTEXT_BYTES=20_000):
        client = docker("developer")
        sent = build(client, context(entry("big", b"x" * 30_000)))
        unpacked = build(client, bomb)
    assert sent.status_code == 413 and "20000 bytes" in sent.json()["message"]
    assert unpacked.status_code == 413 and "unpacks to more than" in unpacked.json()["message"]
    monkeypatch.setattr(images_build, "MAX_ENTRIES", 10)
    crowded = build(client, context(*(entry(f"f{i}", b"") for i in range(12))))
    assert crowded.status_code == 413 and "limit of 10 files" in crowded.json()["message"]
    assert uploads() == before
    assert not Operation.objects.filter(kind="image.build").exists()


def test_build_options_berth_cannot_honour_are_501(docker, host):
    client = docker("developer")
    for query, words in [
        ({"version": "2"}, "BuildKit"),
        ({"target": "stage1"}, "target"),
        ({"remote": "https://example.com/x.git"}, "remote"),
        ({"memory": "1000000"}, "memory"),
    ]:
        response = build(client, context(), **query)
        assert response.status_code == 501 and words in response.json()["message"], query
    assert build(client, context(), t="Bad Tag").status_code == 400
    assert build(client, context(), dockerfile="../Dockerfile").status_code == 400
    assert build(client, context(), buildargs="[1]").status_code == 400


def test_permissions_are_the_rest_apis_and_audited(docker, images):
    viewer = docker("viewer")
    refused = build(viewer, context(), t="tp-x:1")
    assert refused.status_code == 403 and "image.build" in refused.json()["message"]
    event = AuditEvent.objects.filter(action="image.build", outcome="denied").latest("id")
    assert event.summary["user_agent"] == UA
    developer = docker("developer")
    # Developers may not remove, save, push or prune images (the REST API's roles).
    for method, path, perm in [
        ("delete", "/images/app:1", "image.delete"),
        ("get", "/images/app:1/get", "image.save"),
        ("post", "/images/app:1/push", "image.push"),
        ("post", "/images/prune", "image.prune"),
    ]:
        response = getattr(developer, method)(V + path)
        assert response.status_code == 403, (path, response.content)
        assert perm in response.json()["message"]
        assert AuditEvent.objects.filter(action=perm, outcome="denied").exists()
    assert not Operation.objects.exists()


def test_another_teams_image_is_404_and_its_tag_cannot_be_taken(docker, images):
    developer = docker("developer")
    for method, path in [
        ("get", "/images/secret:1/history"),
        ("post", "/images/secret:1/tag?repo=mine&tag=1"),
        ("get", "/images/" + "b" * 12 + "/history"),
    ]:
        response = getattr(developer, method)(V + path)
        assert response.status_code == 404, (path, response.content)
        assert response.json()["message"].startswith("No such image")
    history = developer.get(V + "/images/app:1/history")
    assert history.status_code == 200 and history.json()[0]["Id"] == images["alpha"].image_id
    # Moving busybox:latest (a shared image's tag) needs image.delete on it: refused.
    taken = developer.post(V + "/images/app:1/tag?repo=busybox&tag=latest")
    assert taken.status_code == 403 and "busybox:latest" in taken.json()["message"]
    assert developer.post(V + "/images/app:1/tag?repo=Bad%20Name").status_code == 400
    assert not Operation.objects.exists()
    ok = developer.post(V + "/images/app:1/tag?repo=tp-app&tag=2")
    assert ok.status_code == 201
    op = Operation.objects.get(kind="image.tag")
    assert op.params == {"tag": "tp-app:2"} and op.target_id == str(images["alpha"].pk)


def test_remove_untags_by_name_and_carries_force(docker, images):
    admin = docker("admin")
    assert admin.delete(V + "/images/app:1?force=1&noprune=1").status_code == 200
    op = Operation.objects.get(kind="image.remove")
    assert op.params == {"force": True, "ref": "app:1"}
    assert admin.delete(V + "/images/" + "c" * 12).status_code == 200
    assert Operation.objects.filter(kind="image.remove").latest("id").params["ref"] is None
    assert admin.delete(V + "/images/nope:1").status_code == 404


def test_pull_follows_the_rest_apis_registry_rules(docker, images):
    developer = docker("developer")
    bad = developer.post(V + "/images/create?fromImage=UPPER&tag=1")
    assert bad.status_code == 400 and "invalid reference format" in bad.json()["message"]
    assert developer.post(V + "/images/create").status_code == 400
    # A host-local registry Berth does not have: only registry managers may reach it.
    local = developer.post(V + "/images/create?fromImage=127.0.0.1:5999/x&tag=1")
    assert local.status_code == 403 and "registry.manage" in local.json()["message"]
    # Pulling a name another team's private image holds would move its tag: refused.
    taken = developer.post(V + "/images/create?fromImage=secret&tag=1")
    assert taken.status_code == 403 and "another team" in taken.json()["message"]
    shared = developer.post(V + "/images/create?fromImage=busybox&tag=latest")
    assert shared.status_code == 403 and "shared image" in shared.json()["message"]
    assert not Operation.objects.exists()
    ok = developer.post(V + "/images/create?fromImage=docker.io/library/busybox&tag=1.36")
    op = Operation.objects.get(pk=ok.json()["operation"])
    assert op.kind == "image.pull" and op.params["ref"] == "docker.io/library/busybox:1.36"
    assert op.params["private"] is True
    unknown = developer.get(V + "/images/search?term=registry.example.com:5000/x")
    assert unknown.status_code == 400 and "unknown registry" in unknown.json()["message"]
    url = developer.post(V + "/images/create?fromSrc=https://example.com/x.tar&repo=x")
    assert url.status_code == 501


def test_load_refuses_what_is_not_an_image_archive_and_foreign_tags(docker, images):
    developer = docker("developer")
    before = uploads()
    for body, words in [
        (b"plain text " * 100, "not a tar"),
        (tar_of(entry("hello.txt", b"hi")), "not an image archive"),
        (tar_of(entry("manifest.json", b"{not json")), "not valid"),
    ]:
        response = developer.post(V + "/images/load", body, content_type="application/x-tar")
        assert response.status_code == 400 and words in response.json()["message"]
    manifest = json.dumps([{"Config": "c.json", "RepoTags": ["secret:1"], "Layers": []}])
    foreign = developer.post(
        V + "/images/load",
        tar_of(entry("manifest.json", manifest.encode())),
        content_type="application/x-tar",
    )
    assert foreign.status_code == 403 and "another team" in foreign.json()["message"]
    assert uploads() == before and not Operation.objects.exists()


def test_build_render_speaks_the_legacy_builders_stream():
    op = Operation(kind="image.build", state=Operation.State.RUNNING)
    render = images_build._BuildRender(quiet=False)
    assert list(render(op, {}, "Step 1/2 : FROM busybox\n")) == [
        line(stream="Step 1/2 : FROM busybox\n")
    ]
    op.state, op.result = Operation.State.SUCCEEDED, {"image_id": "sha256:" + "d" * 64}
    assert list(render(op, {}, "")) == [line(aux={"ID": "sha256:" + "d" * 64})]
    # One stream line per line of the log, as the SDK's build() parses them.
    split = images_build._BuildRender(quiet=False)
    running = Operation(kind="image.build", state=Operation.State.RUNNING)
    assert list(split(running, {}, "a\nSuccessfully b")) == [line(stream="a\n")]
    assert list(split(running, {}, "uilt 1234\n")) == [line(stream="Successfully built 1234\n")]
    op.state, op.error = Operation.State.FAILED, "RUN false: exit 1"
    assert json.loads(list(render(op, {}, ""))[0])["error"] == "RUN false: exit 1"
    pull = images_pull._PullRender("busybox:1.36")
    layers = {"sha256:" + "e" * 64: {"status": "Downloading", "current": 5, "total": 10}}
    op = Operation(kind="image.pull", state=Operation.State.RUNNING)
    first = [json.loads(x) for x in pull(op, layers, "")]
    assert first[0] == {"status": "Pulling from busybox", "id": "1.36"}
    assert first[1] == {
        "status": "Downloading",
        "progressDetail": {"current": 5, "total": 10},
        "id": "e" * 12,
    }
    assert list(pull(op, layers, "")) == []  # each change once


def test_image_list_filters(docker, images):
    developer = docker("developer")

    def listed(filters):
        response = developer.get(V + "/images/json", {"filters": json.dumps(filters)})
        assert response.status_code == 200, response.content
        return sorted(tag for image in response.json() for tag in image["RepoTags"])

    assert listed({}) == ["app:1", "busybox:latest"]  # not beta's secret
    assert listed({"reference": ["app"]}) == ["app:1"]
    assert listed({"reference": ["busy*:latest"]}) == ["busybox:latest"]
    assert listed({"dangling": ["true"]}) == []
    assert developer.get(V + "/images/json", {"filters": '{"nope": ["x"]}'}).status_code == 400


def test_odd_input_is_never_a_500(docker, images):
    admin = docker("admin")
    odd = ["ü", "%00", "a" * 2000, "sha256:", "..", "app:1:2", "@", "x@sha256:zz"]
    for ref in odd:
        for method, path in [
            ("get", f"/images/{ref}/history"),
            ("post", f"/images/{ref}/tag?repo=x"),
            ("post", f"/images/app:1/tag?repo={ref}"),
            ("delete", f"/images/{ref}"),
            ("post", f"/images/{ref}/push"),
            ("get", f"/images/{ref}/get"),
            ("post", f"/images/create?fromImage={ref}"),
            ("get", f"/images/search?term={ref}"),
        ]:
            response = getattr(admin, method)(V + path)
            assert response.status_code < 500, (method, path, response.content)
    for query in [
        "buildargs=null",
        "labels=%7B%22a%22%3A1%7D",
        "t=%C3%BC",
        "dockerfile=%00",
        "q=maybe",
    ]:
        response = admin.post(f"{V}/build?{query}", context(), content_type="application/x-tar")
        assert 400 <= response.status_code < 500, (query, response.content)


def test_further_build_tags_are_decided_first_and_tagged_after(docker, users, images):
    developer = docker("developer")
    # Each -t is checked before anything is queued: a name another team holds stops it all.
    taken = build(developer, context(), t="tp-ok:1&t=secret:1")
    assert taken.status_code == 403 and not Operation.objects.exists()
    response = build(developer, context(), t="tp-ok:1&t=tp-ok:2&t=tp-ok:1")
    op = Operation.objects.get(pk=response.json()["operation"])
    assert op.params["tag"] == "tp-ok:1"
    alpha = images["alpha"]
    decision = gate.require(users["developer"], "image.tag", alpha, resource="image")
    op.result = {"row": alpha.pk}
    after = images_build._TagAfterBuild(users["developer"], [("tp-ok:2", decision)], {})
    assert after(op) == [line(stream="Successfully tagged tp-ok:2\n")]
    tagging = Operation.objects.get(kind="image.tag")
    assert tagging.params == {"tag": "tp-ok:2"} and tagging.target_id == str(alpha.pk)
