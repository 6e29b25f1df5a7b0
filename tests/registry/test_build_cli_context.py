"""`build PATH` reads PATH/Dockerfile, not the current directory's; -f still finds files there."""

import argparse

import pytest

from runtime.cli import registry as registry_cli
from runtime.config import RuntimeConfig
from runtime.images.store import ImageStore

pytestmark = pytest.mark.root


@pytest.fixture
def built(tmp_path, monkeypatch, runtime_factory, capsys):
    """build(*argv) -> the labels of the image it tagged, run from a directory with a
    Dockerfile of its own that is not a Dockerfile at all (like the project's root)."""
    from runtime.images.busybox import build_image

    config = RuntimeConfig(root=tmp_path / "state", run_root=tmp_path / "run", prefix="tbctx")
    build_image(runtime_factory("tbctx", config).images)
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    (cwd / "Dockerfile").write_text('"""Not a Dockerfile."""\n\nimport os\n')
    (cwd / "other.Dockerfile").write_text("FROM busybox\nLABEL source=cwd-other\n")
    monkeypatch.chdir(cwd)
    parser = argparse.ArgumentParser(prog="berth")
    registry_cli.register(parser.add_subparsers(dest="command", required=True))

    def build(*argv):
        args = parser.parse_args(["build", "-q", "-t", "tbctx/out", *argv])
        args.config = config
        assert args.func(args) == 0
        capsys.readouterr()
        image = ImageStore(config).resolve("tbctx/out")
        return image.config["config"].get("Labels") or {}

    return build


def test_build_path_reads_the_context_dockerfile(built, tmp_path):
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text("FROM busybox\nLABEL source=context\n")
    (ctx / "alt.Dockerfile").write_text("FROM busybox\nLABEL source=context-alt\n")
    assert built(str(ctx))["source"] == "context"
    # An explicit -f: the current directory's file when it is there, else the context's.
    assert built("-f", "other.Dockerfile", str(ctx))["source"] == "cwd-other"
    assert built("-f", "alt.Dockerfile", str(ctx))["source"] == "context-alt"
