"""`ps`'s quick path (runtime/__main__.py): the usual flags skip argparse, the rest does not."""

import os
import subprocess
import sys
import time
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


@pytest.fixture
def fixed_clock(monkeypatch):
    """Both paths render ages from one instant (no second boundary between them)."""
    import types

    from runtime.cli import quickps
    from runtime.container import listing

    monkeypatch.setattr(listing, "RACY_NS", 0)  # views kept however recent the change
    now = time.time()
    monkeypatch.setattr(quickps, "time", types.SimpleNamespace(time=lambda: now))


def _full_ps(config, argv, capsys) -> str:
    args = ps.quick_args(argv)
    args.config = config
    assert ps._ps(args) == 0
    return capsys.readouterr().out


@pytest.mark.root
def test_ps_from_the_kept_views_prints_what_the_full_path_prints(
    rt, base_spec, fixed_clock, capsys
):
    from runtime.cli import quickps

    running = rt.run(dict(base_spec, name="qps-up", command=["sleep", "1000", "#", "long é"]))
    created = rt.create(dict(base_spec, name="qps-made"))["id"]
    environ = {"BERTH_ROOT": str(rt.config.root), "BERTH_RUN_ROOT": str(rt.config.run_root)}
    time.sleep(0.03)  # the coarse clock that stamps ctimes moves on
    rt.list()  # keeps every view
    for argv in (["ps"], ["ps", "-a"], ["ps", "-aq"], ["ps", "-a", "--no-trunc"]):
        full = _full_ps(rt.config, argv, capsys)
        assert quickps.answer(argv, environ) == 0
        assert capsys.readouterr().out == full
    assert running["id"][:12] in full and created[:12] in full and "qps-made" in full
    assert '"sleep 1000 # long é"' in full  # docker's quoting (strconv.Quote), untruncated

    rt.start(created)  # its directories change: no valid view until observed again
    assert quickps.answer(["ps"], environ) is None
    full = _full_ps(rt.config, ["ps"], capsys)  # observes it and keeps its view
    time.sleep(0.03)
    assert quickps.answer(["ps"], environ) is None or capsys.readouterr().out == full
    rt.list()
    assert quickps.answer(["ps"], environ) == 0
    assert created[:12] in capsys.readouterr().out

    rt.create(dict(base_spec, name="qps-long", command=["sleep", "1000", "# a longer comment"]))
    # Truncated to 20 characters, the ellipsis as docker ps prints it (not \u2026).
    assert '"sleep 1000 # a long…"' in _full_ps(rt.config, ["ps", "-a"], capsys)


@pytest.mark.root
def test_ps_from_the_kept_views_sees_a_dead_monitor(rt, base_spec, fixed_clock, capsys):
    import signal

    from runtime.cli import quickps
    from runtime.container.fsutil import read_json
    from runtime.container.launch import wait_gone

    state = rt.run(dict(base_spec, name="qps-lost"))
    environ = {"BERTH_ROOT": str(rt.config.root), "BERTH_RUN_ROOT": str(rt.config.run_root)}
    time.sleep(0.03)
    rt.list()
    assert quickps.answer(["ps", "-q"], environ) == 0
    assert state["id"][:12] in capsys.readouterr().out
    shim = read_json(rt.store.paths(state["id"]).shim_file)
    os.kill(shim["shim"], signal.SIGKILL)  # monitor and program gone, nobody writes a file
    os.kill(shim["pid"], signal.SIGKILL)
    wait_gone(shim["shim"])
    wait_gone(shim["pid"])
    assert quickps.answer(["ps", "-q"], environ) is None  # the full path observes it


def test_a_missing_index_or_a_bad_prefix_goes_to_the_full_path(tmp_path):
    from runtime.cli import quickps

    environ = {"BERTH_ROOT": str(tmp_path / "root"), "BERTH_RUN_ROOT": str(tmp_path / "run")}
    assert quickps.answer(["ps"], environ) is None
    assert not (tmp_path / "root").exists()  # nothing created
    assert quickps.answer(["ps"], dict(environ, BERTH_PREFIX="Bad!")) is None
    assert quickps.answer(["ps", "--help"], environ) is None


def _script(tmp_path, root, *args, command=("scripts/berth-runtime",), prefix="qps"):
    """scripts/berth-runtime with the environment _berth gives `python -m runtime`."""
    env = dict(
        os.environ,
        BERTH_ROOT=str(root / "root"),
        BERTH_RUN_ROOT=str(root / "run"),
        BERTH_PREFIX=prefix,
        BERTH_PYTHON=sys.executable,
    )
    program = [str(REPO / word) if word.startswith("scripts/") else word for word in command]
    return subprocess.run(
        [*program, *args],
        env=env,
        capture_output=True,
        timeout=60,
        cwd=REPO if program[0] == sys.executable else tmp_path,  # the script runs from anywhere
        text=True,
    )


def test_the_quick_entry_script_answers_as_python_m_runtime(tmp_path):
    """scripts/berth-runtime (-I -S, no runpy) prints and exits as `python -m runtime`: the
    kept views' table, the full path's, argparse's errors and other commands."""
    for args in (["ps", "-a"], ["ps", "-q"], ["ps", "--bogus"], ["ps", "--help"], ["images"]):
        mine, theirs = _script(tmp_path, tmp_path, *args), _berth(tmp_path, *args)
        assert (mine.returncode, mine.stdout, mine.stderr) == (
            theirs.returncode,
            theirs.stdout,
            theirs.stderr,
        ), args
    link = tmp_path / "berth-runtime"  # installed as a link elsewhere: finds its repository
    link.symlink_to(REPO / "scripts" / "berth-runtime")
    linked = _script(tmp_path, tmp_path, "ps", "-a", command=(str(link),))
    assert (linked.returncode, linked.stdout) == (0, _berth(tmp_path, "ps", "-a").stdout)
    # A relative link to that link, run by a relative path through '.' (the script resolves
    # its own path without os.path).
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "br").symlink_to("../berth-runtime")
    for command in ("./bin/br", "bin/./br"):
        relative = _script(tmp_path, tmp_path, "ps", "-a", command=(command,))
        assert (relative.returncode, relative.stdout) == (linked.returncode, linked.stdout)


@pytest.mark.root
def test_the_quick_entry_script_reads_the_kept_views(rt, base_spec, tmp_path):
    """With every view kept, the script's `ps` (its _sqlite3 loaded without functools) lists
    what `python -m runtime ps` lists."""
    made = rt.run(dict(base_spec, name="qps-script"))["id"]
    time.sleep(0.03)
    rt.list()
    base = rt.config.root.parent
    assert rt.config.run_root == base / "run"
    for args in (["ps", "-q", "--no-trunc"], ["ps", "-a", "-q"]):
        mine = _script(tmp_path, base, *args, prefix=rt.config.prefix)
        theirs = _script(
            tmp_path,
            base,
            *args,
            command=(sys.executable, "-m", "runtime"),
            prefix=rt.config.prefix,
        )
        assert mine.returncode == theirs.returncode == 0, mine.stderr + theirs.stderr
        assert mine.stdout == theirs.stdout
        assert made[: len(mine.stdout.split()[0])] in mine.stdout


def test_commands_are_quoted_as_docker_ps_quotes_them():
    from runtime.cli import quickps

    assert quickps._quote("sleep 1000 # a long…") == '"sleep 1000 # a long…"'
    assert quickps._quote('sh -c "echo \\ é"') == '"sh -c \\"echo \\\\ é\\""'
    # Nothing a terminal would act on or hide: escapes, DEL, a right-to-left override.
    assert quickps._quote("a\x1b[2Jb\x7fc\u202ed\n") == '"a\\u001b[2Jb\\u007fc\\u202ed\\n"'
    assert quickps._quote("tag\U000e0001") == '"tag\\U000e0001"'
