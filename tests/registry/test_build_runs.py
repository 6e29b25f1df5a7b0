"""Dockerfile builds on the real runtime: cache reuse and invalidation, RUN in containers, errors."""

import io
import json
import os
import tarfile

import pytest
from registry_helpers import needs_registry

from runtime.build import Builder, BuildError, ContextError, DockerfileError
from runtime.build.commit import commit, history, prune
from runtime.registry import push

pytestmark = pytest.mark.root


@pytest.fixture
def rt(runtime_factory):
    """A runtime with its own prefix and state root, holding the busybox base image."""
    from runtime.images.busybox import build_image

    runtime = runtime_factory("tbld")
    build_image(runtime.images)
    return runtime


def _context(tmp_path, dockerfile: str, files: dict | None = None):
    ctx = tmp_path / "ctx"
    ctx.mkdir(exist_ok=True)
    (ctx / "Dockerfile").write_text(dockerfile)
    for name, data in (files or {}).items():
        path = ctx / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data if isinstance(data, bytes) else data.encode())
    return ctx


def _run_output(rt, image_ref, command=None, entrypoint=None) -> str:
    spec = {"image": image_ref, "network": {"mode": "none"}}
    if entrypoint is not None:
        spec["entrypoint"] = entrypoint
    if command:
        spec["command"] = command
    cid = rt.run(spec)["id"]
    try:
        rt.wait(cid)
        return b"".join(data for _, _, data in rt.logs(cid)).decode()
    finally:
        rt.delete(cid, force=True)


DOCKERFILE = """\
# a comment, then a continuation
FROM busybox
ARG GREETING=hello
ENV APP_HOME=/app \\
    MODE=test
WORKDIR $APP_HOME
COPY a.txt ./
RUN echo "step-one ran: $(cat a.txt) $GREETING" | tee one.txt
COPY b.txt ./
RUN echo "step-two ran: $(cat b.txt)" | tee two.txt && rm /bin/vi
LABEL org.example.name="built app"
EXPOSE 8080/tcp
CMD ["sh", "-c", "cat one.txt two.txt; echo $MODE"]
"""


def test_build_cache_reuse_and_invalidation(rt, tmp_path):
    ctx = _context(tmp_path, DOCKERFILE, {"a.txt": "A1", "b.txt": "B1"})
    builder = Builder(rt)
    logs = []
    first = builder.build(ctx, tag="tbld/app:1", log=logs.append)
    text = "".join(logs)
    assert "step-one ran: A1 hello" in text and "step-two ran: B1" in text
    assert first.cached_steps == 2  # FROM and ARG only
    assert _run_output(rt, "tbld/app:1") == "step-one ran: A1 hello\nstep-two ran: B1\ntest\n"
    config = first.image.config["config"]
    assert config["WorkingDir"] == "/app"
    assert config["Labels"] == {"org.example.name": "built app"}
    assert config["ExposedPorts"] == {"8080/tcp": {}}
    assert "MODE=test" in config["Env"]
    # RUN's `rm /bin/vi` became a whiteout: vi is gone from the image.
    assert "vi" not in _run_output(rt, "tbld/app:1", ["ls", "/bin"]).split()

    logs.clear()
    second = builder.build(ctx, tag="tbld/app:1", log=logs.append)
    assert all(step["cached"] for step in second.steps)
    assert second.image.id == first.image.id
    assert "ran: A1" not in "".join(logs)

    # Change the second COPY's file: it and every later step rebuild, earlier ones do not.
    (ctx / "b.txt").write_text("B2")
    logs.clear()
    third = builder.build(ctx, tag="tbld/app:1", log=logs.append)
    cached = [step["cached"] for step in third.steps]
    changed = [s["instruction"] for s in third.steps].index("COPY b.txt ./")
    assert cached[:changed] == [True] * changed
    assert cached[changed:] == [False] * (len(cached) - changed)
    assert "ran: A1" not in "".join(logs) and "step-two ran: B2" in "".join(logs)
    assert third.image.id != first.image.id
    assert third.image.layers[:-2] == first.image.layers[:-2]

    # Build args are part of RUN's identity.
    fourth = builder.build(ctx, tag="tbld/app:2", build_args={"GREETING": "bye"}, log=logs.append)
    assert not fourth.steps[6]["cached"]  # the first RUN
    assert "hello" not in _run_output(rt, "tbld/app:2") and "bye" in _run_output(rt, "tbld/app:2")

    # No intermediate image or build container stays behind.
    assert sorted(t for i in rt.images.list() for t in i.repo_tags) == [
        "busybox:latest",
        "tbld/app:1",
        "tbld/app:2",
    ]
    assert len(rt.images.list()) == 4  # the first app:1 build is now untagged (dangling)
    assert rt.list() == []


def test_failing_run_is_a_clear_error_and_leaves_nothing(rt, tmp_path):
    ctx = _context(
        tmp_path, "FROM busybox\nCOPY f /f\nRUN echo about to fail; exit 3\nCMD true\n", {"f": "x"}
    )
    before = {image.id for image in rt.images.list()}
    with pytest.raises(BuildError, match=r"line 3: .*returned a non-zero code: 3"):
        Builder(rt).build(ctx, tag="tbld/fail:1")
    assert {image.id for image in rt.images.list()} == before
    assert rt.list() == []
    assert not any(rt.images.layout.tmp.iterdir())


def test_unknown_instruction_names_its_line(rt, tmp_path):
    ctx = _context(tmp_path, "FROM busybox\n\n# comment\nFROBNICATE now\n")
    with pytest.raises(DockerfileError, match="line 4: unknown instruction 'FROBNICATE'"):
        Builder(rt).build(ctx, tag="tbld/x:1")


def test_context_escapes_are_refused(rt, tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("outside")
    ctx = _context(tmp_path, "FROM busybox\nCOPY ../secret.txt /s\n")
    with pytest.raises(ContextError, match="outside the build context"):
        Builder(rt).build(ctx, tag="tbld/x:1")
    (ctx / "Dockerfile").write_text("FROM busybox\nCOPY link /s\n")
    os.symlink(secret, ctx / "link")
    with pytest.raises(ContextError, match="resolves outside the build context"):
        Builder(rt).build(ctx, tag="tbld/x:1")
    # A tar context whose member climbs out is refused before anything runs.
    bad = tmp_path / "bad-context.tar"
    with tarfile.open(bad, "w") as tar:
        for name, data in (("Dockerfile", b"FROM busybox\n"), ("../evil", b"x")):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    with pytest.raises(ContextError):
        Builder(rt).build(bad, tag="tbld/x:1")
    assert not (tmp_path / "evil").exists()
    assert rt.list() == []


def test_tar_context_and_add_extracts_archives(rt, tmp_path):
    payload = tmp_path / "payload.tar.gz"
    with tarfile.open(payload, "w:gz") as tar:
        for name, data in (("pkg/one.txt", b"one"), ("pkg/sub/two.txt", b"two")):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    context = tmp_path / "context.tar"
    dockerfile = (
        b"FROM busybox\nADD payload.tar.gz /opt/\n"
        b'COPY --chown=7:8 --chmod=600 ["notes.txt", "/opt/notes.txt"]\n'
        b'COPY logs/ /logs/\nUSER nobody\nENTRYPOINT ["cat"]\nCMD ["/opt/pkg/one.txt"]\n'
    )
    with tarfile.open(context, "w") as tar:
        for name, data in (
            ("Dockerfile", dockerfile),
            ("notes.txt", b"n"),
            ("payload.tar.gz", payload.read_bytes()),
            (".dockerignore", b"logs/*.log\n"),
            ("logs/keep.txt", b"kept"),
            ("logs/drop.log", b"ignored"),
        ):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    result = Builder(rt).build(context, tag="tbld/add:1")
    assert _run_output(rt, "tbld/add:1") == "one"
    assert _run_output(rt, "tbld/add:1", ["/opt/pkg/sub/two.txt"]) == "two"
    assert result.image.config["config"]["User"] == "nobody"
    listing = _run_output(
        rt, "tbld/add:1", ["-c", "stat -c '%u:%g %a' /opt/notes.txt; ls /logs"], entrypoint=["sh"]
    )
    assert listing.split() == ["7:8", "600", "keep.txt"]


def test_commit_history_and_prune(rt, tmp_path):
    cid = rt.run(
        {
            "image": "busybox",
            "command": ["sh", "-c", "echo committed > /data.txt; rm /bin/ls"],
            "network": {"mode": "none"},
        }
    )["id"]
    rt.wait(cid)
    image = commit(
        rt, cid, "tbld/committed:1", changes=['CMD ["cat", "/data.txt"]'], message="snapshot"
    )
    untagged = commit(rt, cid, author="tester")
    rt.delete(cid, force=True)
    assert untagged.repo_tags == [] and untagged.config["author"] == "tester"
    assert _run_output(rt, "tbld/committed:1") == "committed\n"
    assert "ls" not in _run_output(rt, "tbld/committed:1", ["sh", "-c", "echo /bin/*"]).split()
    rows = history(rt.images, "tbld/committed:1")
    assert rows[0]["id"] == image.id and rows[0]["comment"] == "snapshot"
    assert rows[0]["created_by"].startswith("berth commit") and rows[0]["size"] > 0
    assert len(rows) == len(image.config["history"])

    # A dangling image goes with prune; tagged and in-use ones stay.
    result = prune(rt)
    assert result["removed"] == [f"Deleted: {untagged.id}"]
    assert sorted(t for i in rt.images.list() for t in i.repo_tags) == [
        "busybox:latest",
        "tbld/committed:1",
    ]
    # With all_images, every image no container uses goes.
    prune(rt, all_images=True)
    assert rt.images.list() == []
    assert json.dumps(result)


@needs_registry
def test_from_pulls_a_missing_base_image(rt, registry, tmp_path):
    base = f"{registry.host}/bases/busybox:1"
    push(rt.images, "busybox:latest", base)
    ctx = _context(tmp_path, f"FROM {base}\nRUN echo on the pulled base > /note\n")
    rt.images.remove("busybox:latest")
    logs = []
    result = Builder(rt).build(ctx, tag="tbld/pulled:1", log=logs.append)
    assert f"Pulling {base}" in "".join(logs)
    assert _run_output(rt, "tbld/pulled:1", ["cat", "/note"]) == "on the pulled base\n"
    assert result.image.layers[0] == rt.images.resolve(base).layers[0]


def test_upper_dir_to_layer_translates_overlay_markers(tmp_path):
    import socket
    import stat

    from runtime.build.layers import diff_from_upper

    upper = tmp_path / "upper"
    (upper / "dir").mkdir(parents=True)
    (upper / "dir" / "file").write_text("x")
    os.link(upper / "dir" / "file", upper / "dir" / "hardlink")
    os.symlink("file", upper / "dir" / "symlink")
    os.mkfifo(upper / "dir" / "fifo")
    os.mknod(upper / "deleted", 0o600 | stat.S_IFCHR, 0)  # overlayfs's whiteout
    os.setxattr(upper / "dir", "trusted.overlay.opaque", b"y")  # overlayfs's opaque dir
    (upper / "etc").mkdir()
    (upper / "etc" / "hosts").touch()  # the runtime's bind-mount target
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(upper / "dir" / "socket"))
        diff_from_upper(upper, tmp_path / "layer.tar")
    with tarfile.open(tmp_path / "layer.tar") as tar:
        members = {m.name: m for m in tar}
    assert set(members) == {
        ".wh.deleted", "dir", "dir/.wh..wh..opq", "dir/file", "dir/hardlink", "dir/symlink",
        "dir/fifo", "etc",
    }  # fmt: skip
    assert members["dir/hardlink"].islnk() and members["dir/hardlink"].linkname == "dir/file"
    assert members["dir/symlink"].linkname == "file" and members["dir/fifo"].isfifo()
