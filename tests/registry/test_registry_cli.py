"""The command line: login, pull, push, search, save/load round trips, build, history."""

import argparse
import contextlib
import importlib
import io
import stat
import subprocess

import pytest
from registry_helpers import TEST_PASSWORD, TEST_USER, make_oci_layout, needs_registry, skopeo

from runtime.cli import images as images_cli
from runtime.cli import registry as registry_cli
from runtime.config import RuntimeConfig
from runtime.errors import BerthError
from runtime.images.store import ImageStore
from runtime.registry import RegistryAuthError, RegistryError

pytestmark = [pytest.mark.root, needs_registry]


@pytest.fixture
def config(tmp_path):
    return RuntimeConfig(root=tmp_path / "state", run_root=tmp_path / "run", prefix="tcli")


@pytest.fixture
def cli(config, capsys, monkeypatch):
    """Run one command line in-process; returns its stdout."""
    parser = argparse.ArgumentParser(prog="berth")
    sub = parser.add_subparsers(dest="command", required=True)
    images_cli.register(sub)
    registry_cli.register(sub)

    def run(*argv, stdin=None):
        if stdin is not None:
            monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(stdin.encode())))
        args = parser.parse_args(list(argv))
        args.config = config
        capsys.readouterr()
        assert args.func(args) == 0
        return capsys.readouterr().out

    return run


def test_login_pull_push_history_with_token_registry(cli, config, token_registry, tmp_path):
    info = make_oci_layout(tmp_path / "l", [{"cli": b"cli layer"}, {"two": b"second"}])
    skopeo(
        "copy", "--dest-tls-verify=false", "--dest-creds", f"{TEST_USER}:{TEST_PASSWORD}",
        f"oci:{tmp_path / 'l'}:latest", f"docker://{token_registry.host}/cli/img:1",
    )  # fmt: skip
    ref = f"{token_registry.host}/cli/img:1"
    with pytest.raises(RegistryAuthError):
        cli("pull", ref)
    with pytest.raises(RegistryAuthError):
        cli("login", "-u", TEST_USER, "--password-stdin", token_registry.host, stdin="bad\n")
    assert "Login Succeeded" in cli(
        "login",
        "-u",
        TEST_USER,
        "--password-stdin",
        token_registry.host,
        stdin=TEST_PASSWORD + "\n",
    )
    mode = stat.S_IMODE((config.root / "registries.json").stat().st_mode)
    assert mode == 0o600

    out = cli("pull", ref)
    assert f"Digest: {info['manifest_digest']}" in out and info["config_digest"] in out
    assert "Image is up to date" in cli("pull", ref)

    out = cli("push", ref, f"{token_registry.host}/cli/copy:2")
    assert out.strip().endswith(info["manifest_digest"])

    hist = cli("history", "--no-trunc", ref)
    assert "layer 0" in hist and "layer 1" in hist and info["config_digest"] in hist
    assert cli("image", "history", "-q", ref).split()[0] == info["config_digest"]
    assert "Removing login credentials" in cli("logout", token_registry.host)


def test_search_registry_and_unreachable_hub(cli, registry, tmp_path, monkeypatch):
    make_oci_layout(tmp_path / "l", [{"s": b"cli search"}])
    skopeo(
        "copy",
        "--dest-tls-verify=false",
        f"oci:{tmp_path / 'l'}:latest",
        f"docker://{registry.host}/clisearch/one:7",
    )
    out = cli("search", "--registry", registry.host, "--tags", "clisearch")
    assert f"{registry.host}/clisearch/one" in out and "tags: 7" in out
    # Docker Hub is not reachable here; point its index at a closed loopback port to prove the
    # error is a clear RegistryError and no traffic leaves the machine.
    from registry_helpers import free_port

    search_mod = importlib.import_module("runtime.registry.search")

    monkeypatch.setattr(search_mod, "HUB_INDEX", f"127.0.0.1:{free_port()}")
    with pytest.raises(RegistryError, match="Docker Hub search is not reachable"):
        cli("search", "busybox")


def test_save_load_round_trip_and_skopeo_archive(cli, config, registry, tmp_path):
    info = make_oci_layout(tmp_path / "l", [{"saved": b"save me"}])
    # A docker-archive written by skopeo loads into Berth.
    archive = tmp_path / "skopeo.tar"
    skopeo("copy", f"oci:{tmp_path / 'l'}:latest", f"docker-archive:{archive}:skopeo/made:1")
    out = cli("load", "-i", str(archive))
    assert "Loaded image: skopeo/made:1" in out
    store = ImageStore(config)
    assert store.resolve("skopeo/made:1").id == info["config_digest"]

    # Berth's save loads back into an empty store with the same id and tag.
    saved = tmp_path / "berth-save.tar"
    cli("save", "-o", str(saved), "skopeo/made:1")
    cli("rmi", "skopeo/made:1")
    assert store.list() == []
    assert "Loaded image: skopeo/made:1" in cli("load", "-i", str(saved))
    assert store.resolve("skopeo/made:1").id == info["config_digest"]
    # ... and skopeo reads Berth's save too.
    try:
        skopeo("inspect", f"docker-archive:{saved}")
    except subprocess.CalledProcessError as exc:
        pytest.fail(exc.stderr)


def test_build_and_commit_commands(cli, config, tmp_path, runtime_factory):
    from runtime.images.busybox import build_image

    rt = runtime_factory("tcli", config)
    build_image(rt.images)
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "build.Dockerfile").write_text(
        "FROM busybox\nARG WHO\nRUN echo built for $WHO > /who\nCMD cat /who\n"
    )
    out = cli(
        "build", "-t", "tcli/built", "-f", "build.Dockerfile", "--build-arg", "WHO=cli", str(ctx)
    )
    assert (
        "Step 3/4 : RUN echo built for $WHO > /who" in out
        and "Successfully tagged tcli/built:latest" in out
    )
    assert "Using cache" in cli(
        "build", "-t", "tcli/built", "-f", "build.Dockerfile", "--build-arg", "WHO=cli", str(ctx)
    )
    with pytest.raises(BerthError, match="not found in the build context"):
        cli("build", "-f", "missing.Dockerfile", str(ctx))

    cid = rt.run(
        {
            "image": "tcli/built",
            "command": ["sh", "-c", "echo changed > /who"],
            "network": {"mode": "none"},
        }
    )["id"]
    try:
        rt.wait(cid)
        image_id = cli(
            "commit", "-c", "CMD cat /who", "-m", "from cli", cid, "tcli/committed:1"
        ).strip()
    finally:
        with contextlib.suppress(BerthError):
            rt.delete(cid, force=True)
    assert ImageStore(config).resolve("tcli/committed:1").id == image_id
    assert "from cli" in cli("history", "tcli/committed:1")
