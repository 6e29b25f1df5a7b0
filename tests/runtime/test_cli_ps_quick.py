"""`ps`'s quick path (runtime/__main__.py): the usual flags skip argparse, the rest does not."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from runtime.cli import ps

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("argv", "flags"),
    [
        (["ps"], (False, False, False)),
        (["ps", "-a"], (True, False, False)),
        (["ps", "--all", "--quiet"], (True, True, False)),
        (["ps", "-aq", "--no-trunc"], (True, True, True)),
        (["ps", "-qa"], (True, True, False)),
    ],
)
def test_quick_args_reads_the_usual_flags(argv, flags):
    args = ps.quick_args(argv)
    assert (args.all, args.quiet, args.no_trunc) == flags


@pytest.mark.parametrize(
    "argv", [["ps", "--help"], ["ps", "-x"], ["ps", "-af"], ["ps", "web"], ["run"], []]
)
def test_anything_else_goes_through_argparse(argv):
    assert ps.quick_args(argv) is None


def _berth(tmp_path, *args):
    env = dict(
        os.environ,
        BERTH_ROOT=str(tmp_path / "root"),
        BERTH_RUN_ROOT=str(tmp_path / "run"),
        BERTH_PREFIX="qps",
    )
    return subprocess.run(
        [sys.executable, "-m", "runtime", *args],
        env=env,
        capture_output=True,
        timeout=60,
        cwd=REPO,
        text=True,
    )


def test_quick_ps_prints_the_table_on_an_empty_root(tmp_path):
    out = _berth(tmp_path, "ps", "-a")
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == [
        "CONTAINER",
        "ID",
        "IMAGE",
        "COMMAND",
        "CREATED",
        "STATUS",
        "PORTS",
        "NAMES",
    ]
    quiet = _berth(tmp_path, "ps", "-q")
    assert quiet.returncode == 0 and quiet.stdout == ""


def test_quick_ps_imports_neither_argparse_nor_the_runtime_api(tmp_path):
    code = (
        "import sys, runpy; sys.argv = ['runtime', 'ps', '-a']\n"
        "try:\n    runpy.run_module('runtime', run_name='__main__')\n"
        "except SystemExit:\n    pass\n"
        "print(sorted(m for m in ('argparse', 'typing', 'runtime.api', 'runtime.spec')"
        " if m in sys.modules))"
    )
    env = dict(os.environ, BERTH_ROOT=str(tmp_path / "root"), BERTH_RUN_ROOT=str(tmp_path / "run"))
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, timeout=60, cwd=REPO, text=True
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "[]"


def test_a_bad_flag_still_gets_argparse_one_line_error(tmp_path):
    out = _berth(tmp_path, "ps", "--bogus")
    assert out.returncode == 125
    assert "unrecognized arguments: --bogus" in out.stderr
