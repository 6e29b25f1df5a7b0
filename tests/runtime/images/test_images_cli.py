"""The image verbs of the command line, driven through argparse in-process."""

import argparse
import gzip
import json

import pytest
from image_archives import docker_archive, layer

from runtime.cli import images as images_cli
from runtime.errors import BerthError

pytestmark = pytest.mark.root


@pytest.fixture
def berth(config, capsys):
    """run("images", "-q") -> (exit code, stdout), stderr in run.err; errors raised by the
    store come back as (code, message) as the main command line would print them."""
    parser = argparse.ArgumentParser(prog="berth")
    images_cli.register(parser.add_subparsers(dest="command", required=True))

    def run(*argv):
        args = parser.parse_args(argv)
        args.config = config
        try:
            code = args.func(args)
        except BerthError as err:
            return err.exit_code, str(err)
        captured = capsys.readouterr()
        run.err = captured.err
        return code, captured.out

    return run


def test_load_tag_images_save_rmi(berth, tmp_path):
    archive, saved = tmp_path / "in.tar", tmp_path / "out.tar"
    (image_id,) = docker_archive(archive, [([layer([("f", b"1")])], ["one:1"], {"Cmd": ["x"]})])

    assert berth("load", "-i", str(archive)) == (0, "Loaded image: one:1\n")
    assert berth("tag", "one:1", "two") == (0, "")
    code, out = berth("images")
    lines = out.splitlines()
    assert code == 0 and lines[0].split() == ["REPOSITORY", "TAG", "IMAGE", "ID", "CREATED", "SIZE"]
    assert [line.split()[:3] for line in lines[1:]] == [
        ["one", "1", image_id[7:19]],
        ["two", "latest", image_id[7:19]],
    ]
    assert berth("image", "ls", "-q", "--no-trunc") == (0, image_id + "\n")
    code, out = berth("image", "inspect", "two")
    assert code == 0 and json.loads(out)[0]["Config"]["Cmd"] == ["x"]
    assert berth("save", "-o", str(saved), "one:1") == (0, "")
    assert berth("rmi", "one:1", "two") == (
        0,
        f"Untagged: one:1\nUntagged: two:latest\nDeleted: {image_id}\n",
    )
    assert berth("images", "-q") == (0, "")
    assert berth("image", "load", "-q", "-i", str(saved)) == (0, "")
    assert berth("image", "rm", "one:1")[0] == 0


def test_import_with_changes_and_errors(berth, tmp_path):
    rootfs = tmp_path / "rootfs.tgz"
    rootfs.write_bytes(gzip.compress(layer([("bin/", None), ("bin/app", b"#!")])))

    code, out = berth("import", "-c", "CMD /bin/app", "-c", "ENV X=1", str(rootfs), "mine:v1")
    assert code == 0 and out.startswith("sha256:")
    code, out = berth("image", "inspect", "mine:v1")
    assert json.loads(out)[0]["Config"]["Env"] == ["X=1"]

    assert berth("rmi", "nothing") == (1, "")
    assert "no such image: nothing" in berth.err
    assert berth("tag", "nothing", "x") == (125, "no such image: nothing")
    code, message = berth("load", "-i", str(rootfs))
    assert code == 125 and "import FILE REF" in message
