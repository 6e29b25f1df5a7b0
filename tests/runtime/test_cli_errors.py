"""Issue 22: a bad flag or value on the command line is one clear line and exit code 125."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

CASES = [
    (["run", "--cpus", "abc", "busybox"], "berth run: argument --cpus: invalid float value: 'abc'"),
    (["run", "--memory", "12q", "busybox", "true"], "invalid memory limit: '12q'"),
    (["run", "--no-such-flag", "busybox"], "unrecognized arguments: --no-such-flag"),
    (["stop", "--time", "soon", "x"], "berth stop: argument"),
    (["bogus"], "berth: argument COMMAND: invalid choice: 'bogus'"),
]


@pytest.mark.parametrize(("argv", "words"), CASES, ids=[" ".join(c[0][:2]) for c in CASES])
def test_a_bad_value_is_one_line_and_exit_125(tmp_path, argv, words):
    env = dict(
        os.environ,
        PYTHONPATH=str(REPO),
        BERTH_ROOT=str(tmp_path / "root"),
        BERTH_RUN_ROOT=str(tmp_path / "run"),
        BERTH_PREFIX="tce",
    )
    proc = subprocess.run(
        [sys.executable, "-m", "runtime", *argv],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 125, proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and words in lines[0], proc.stderr
    assert proc.stdout == ""
    # Refused before the runtime did anything: no state was written.
    assert not (tmp_path / "root").exists() or not any((tmp_path / "root").rglob("*.json"))
