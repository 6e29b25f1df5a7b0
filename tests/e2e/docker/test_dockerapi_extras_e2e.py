"""The real docker CLI against a served Berth: cp both ways, stats, top, diff, export, rename,
events, system df and container prune (dockerapi/stats.py, archive.py, events.py, ...).

One long-running container serves most checks; one short run gives the events a die.
"""

import io
import json
import shutil
import subprocess
import tarfile
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(shutil.which("docker") is None, reason="no docker CLI")


@pytest.fixture(scope="module")
def main(dock):
    """A running busybox container of the developer's, removed at the end."""
    dock("run", "-d", "--name", "dx-main", "busybox", "sleep", "1000")
    try:
        yield "dx-main"
    finally:
        for name in ("dx-main", "dx-renamed", "dx-short"):
            dock("rm", "-f", name, check=False)


def test_cp_both_ways_file_and_directory(dock, main, tmp_path):
    (tmp_path / "hello.txt").write_text("hello from the host\n")
    tree = tmp_path / "tree"
    (tree / "sub").mkdir(parents=True)
    (tree / "sub" / "a.txt").write_text("a\n")
    (tree / "link").symlink_to("/etc/passwd")
    dock("cp", str(tmp_path / "hello.txt"), f"{main}:/tmp/")
    dock("cp", str(tree), f"{main}:/tmp/tree")
    listing = dock(
        "exec", main, "sh", "-c", "cat /tmp/hello.txt /tmp/tree/sub/a.txt; ls -l /tmp/tree"
    )
    assert "hello from the host" in listing.stdout and "a\n" in listing.stdout
    assert "link -> /etc/passwd" in listing.stdout

    out = tmp_path / "out"
    out.mkdir()
    dock("cp", f"{main}:/etc/passwd", str(out / "passwd"))
    assert (out / "passwd").read_text().startswith("root:")
    dock("cp", f"{main}:/tmp/tree", str(out / "tree"))
    assert (out / "tree" / "sub" / "a.txt").read_text() == "a\n"
    assert (out / "tree" / "link").is_symlink()

    # An archive with a ../ entry is refused whole: nothing of it is written.
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name in ("fine.txt", "../escaped.txt"):
            info = tarfile.TarInfo(name)
            info.size = 2
            tar.addfile(info, io.BytesIO(b"x\n"))
    refused = subprocess.run(
        ["docker", "cp", "-", f"{main}:/tmp"],
        input=buffer.getvalue(),
        env=dock.env,
        capture_output=True,
        timeout=60,
    )
    assert refused.returncode != 0
    assert b"leaves the target directory" in refused.stderr
    left = dock("exec", main, "ls", "/tmp", "/").stdout
    assert "fine.txt" not in left and "escaped.txt" not in left
    # A path missing in the container is Docker's "Could not find the file".
    missing = dock("cp", f"{main}:/no/such", str(out / "x"), check=False)
    assert missing.returncode != 0 and "Could not find the file" in missing.stderr

    changes = dock("diff", main).stdout.splitlines()
    assert "A /tmp/hello.txt" in changes and "A /tmp/tree/sub/a.txt" in changes
    assert "C /tmp" in changes and not any("/etc/hosts" in line for line in changes)


def test_stats_top_export_rename(dock, main):
    stats = dock(
        "stats", "--no-stream", "--format", "{{.Name}} {{.CPUPerc}} {{.MemUsage}}", main
    ).stdout
    name, cpu, usage = stats.split(maxsplit=2)
    assert name == main and cpu.endswith("%") and float(cpu[:-1]) < 100
    assert "/" in usage and not usage.startswith("0B")
    top = dock("top", main).stdout
    assert "sleep 1000" in top and "PID" in top.splitlines()[0]
    exported = subprocess.run(
        f"docker export {main} | tar t", shell=True, env=dock.env, capture_output=True, timeout=60
    )
    names = exported.stdout.decode().split()
    assert exported.returncode == 0 and "bin/busybox" in names
    dock("rename", main, "dx-renamed")
    assert "dx-renamed" in dock("ps", "--format", "{{.Names}}").stdout
    dock("rename", "dx-renamed", main)
    # New limits through the role's maxima, live in the running container's cgroup.
    dock("update", "--memory", "64m", main)
    usage = dock("stats", "--no-stream", "--format", "{{.MemUsage}}", main).stdout
    assert usage.strip().endswith("/ 64MiB"), usage
    refused = dock("update", "--pids-limit", "100000", main, check=False)
    assert refused.returncode != 0 and "pids: 100000 asked" in refused.stderr


def _first_lines(dock, args, count, then=None, timeout=30):
    """Start a streaming docker command, run `then`, read `count` lines, stop it by its pid."""
    proc = subprocess.Popen(
        ["docker", *args], env=dock.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        if then:
            time.sleep(1.5)  # the stream's first poll; no assertion depends on this pause
            then()
        lines = []
        deadline = time.monotonic() + timeout
        while len(lines) < count and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line.strip())
        return lines
    finally:
        proc.kill()  # the CLI waits out SIGTERM while it streams
        proc.wait(10)


def test_stats_and_events_stream(dock, main):
    samples = _first_lines(dock, ["stats", "--format", "{{json .}}", main], 2)
    assert len(samples) == 2 and all(main in line for line in samples)
    followed = _first_lines(
        dock,
        ["events", "--filter", f"container={main}", "--format", "{{.Action}} {{.Actor.ID}}"],
        1,
        then=lambda: dock("pause", main) and dock("unpause", main),
    )
    assert followed and followed[0].startswith("pause ")


def test_events_df_and_container_prune(dock, main, tmp_path):
    since = time.time() - 1
    dock(
        "run", "--name", "dx-short", "--label", "dx=1", "busybox", "sh", "-c", "exit 3", check=False
    )
    until = time.time() + 1
    events = dock(
        "events",
        "--since",
        f"{since:.3f}",
        "--until",
        f"{until:.3f}",
        "--filter",
        "container=dx-short",
        "--format",
        "{{json .}}",
    ).stdout.splitlines()
    actions = [json.loads(line)["Action"] for line in events]
    assert actions[:3] == ["create", "start", "die"], actions
    assert json.loads(events[2])["Actor"]["Attributes"]["exitCode"] == "3"

    # Out of a stopped container: read from its layers.
    dock("cp", "dx-short:/etc/passwd", str(tmp_path / "passwd"))
    assert (tmp_path / "passwd").read_text().startswith("root:")

    df = dock("system", "df").stdout
    assert "Images" in df and "Containers" in df and "Local Volumes" in df

    # Only this module's (the stack may be shared): the label filter of prune.
    pruned = dock("container", "prune", "-f", "--filter", "label=dx=1").stdout
    assert "Deleted Containers" in pruned
    left = dock("ps", "-a", "--format", "{{.Names}}").stdout.split()
    assert "dx-short" not in left and main in left

    dock("network", "create", "--label", "dx=1", "dx-net")
    dock("volume", "create", "--label", "dx=1", "dx-vol")
    try:
        networks = dock("network", "prune", "-f", "--filter", "label=dx=1").stdout
        volumes = dock("volume", "prune", "-a", "-f", "--filter", "label=dx=1").stdout
        assert "dx-net" in networks and "dx-vol" in volumes
    finally:
        dock("network", "rm", "dx-net", check=False)
        dock("volume", "rm", "dx-vol", check=False)


def test_cp_into_stopped_and_created_containers(dock, web, tmp_path):
    """Into an exited container's upper layer (a deleted directory made again stays opaque, a
    link resolves inside the container, the file is root's inside its user namespace) and into
    a created one that waits for its start."""
    script = (
        "if [ -e /tmp/marker ]; then ls /var/spool; cat /etc/dx-in.txt /root/dx-esc.txt; "
        "stat -c %u:%g /etc/dx-in.txt; else rm -rf /var/spool; ln -s /root /tmp/esc; "
        "touch /tmp/marker; fi"
    )
    (tmp_path / "dx-in.txt").write_text("into a stopped one\n")
    (tmp_path / "dx-esc.txt").write_text("stays inside\n")
    (tmp_path / "spool").mkdir()
    (tmp_path / "spool" / "new.txt").write_text("n\n")
    try:
        dock("run", "--name", "dx-stopped", "busybox", "sh", "-c", script)
        dock("cp", str(tmp_path / "dx-in.txt"), "dx-stopped:/etc/")
        dock("cp", str(tmp_path / "spool"), "dx-stopped:/var/spool")
        dock("cp", str(tmp_path / "dx-esc.txt"), "dx-stopped:/tmp/esc/")
        assert not Path("/root/dx-esc.txt").exists()
        out = dock("start", "-a", "dx-stopped").stdout.split()
        assert out == ["new.txt", "into", "a", "stopped", "one", "stays", "inside", "0:0"], out

        dock("create", "--name", "dx-created", "busybox", "cat", "/dx-in.txt")
        dock("cp", str(tmp_path / "dx-in.txt"), "dx-created:/")
        started = dock("start", "-a", "dx-created")
        assert started.stdout == "into a stopped one\n", started.stderr
    finally:
        dock("rm", "-f", "dx-stopped", "dx-created", check=False)
    uploads = web.data_dir / "uploads"
    assert not uploads.exists() or not [p for p in uploads.iterdir() if p.name.startswith("cp-")]


def test_cp_of_an_archive_over_64_mib_both_ways(dock, main, web, tmp_path):
    size = 80 * 1024 * 1024
    dock("exec", main, "dd", "if=/dev/zero", "of=/tmp/dx-big", "bs=1M", "count=80")
    try:
        dock("cp", f"{main}:/tmp/dx-big", str(tmp_path / "big"), timeout=180)
        assert (tmp_path / "big").stat().st_size == size
        dock("cp", str(tmp_path / "big"), f"{main}:/tmp/dx-big2", timeout=180)
        assert dock("exec", main, "stat", "-c", "%s", "/tmp/dx-big2").stdout.strip() == str(size)
    finally:
        dock("exec", main, "rm", "-f", "/tmp/dx-big", "/tmp/dx-big2", check=False)
    exports = web.data_dir / "exports"
    assert not exports.exists() or not [p for p in exports.iterdir() if "files-" in p.name]
