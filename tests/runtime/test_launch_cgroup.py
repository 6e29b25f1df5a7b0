"""The init's cgroup move, made by its parent while the init sets up (issue 14).

The init waits for the move before it makes its cgroup namespace and execs; a move that
fails stops the container before its program runs, with a clear error and nothing left.
"""

import os

import pytest

from runtime.errors import KernelError

pytestmark = pytest.mark.root


def test_a_failed_cgroup_move_stops_the_start_and_leaves_nothing(rt, base_spec):
    real = rt.cgroups.procs_files
    # The first hierarchy's procs file points nowhere: the parent's write fails.
    rt.cgroups.procs_files = lambda cid: [f"{real(cid)[0]}.missing", *real(cid)[1:]]
    try:
        with pytest.raises(KernelError, match="cannot move the container into its cgroup"):
            rt.run(dict(base_spec, name="cgmovefail"))
    finally:
        del rt.cgroups.procs_files
    assert [s for s in rt.list() if s["name"] == "cgmovefail"] == []
    assert not any(
        name.startswith(rt.config.prefix) or name == "cgmovefail"
        for name in os.listdir(rt.store.names_dir)
    )
    # Every container's cgroup left is one the session made before (none of this one's).
    assert set(rt.cgroups.list()) <= set(rt.store.ids())


def test_the_program_starts_in_its_cgroup_and_namespace(rt, base_spec):
    st = rt.run(dict(base_spec, command=["cat", "/proc/self/cgroup"]))
    rt.wait(st["id"])
    lines = [data for _, _, data in rt.logs(st["id"])]
    # Every hierarchy shows the container's own group as the namespace's root.
    assert lines and all(line.decode().rstrip("\n").endswith(":/") for line in lines)
    rt.delete(st["id"])


def _exited(pid: int) -> bool:
    """Gone, or a zombie its new parent has yet to reap."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rpartition(")")[2].split()[0] == "Z"
    except FileNotFoundError:
        return True


def test_a_failed_cgroup_create_stops_the_children_and_leaves_nothing(
    rt, base_spec, monkeypatch, tmp_path
):
    # The create's cgroups are made while the launch's children fork: they wait for them.
    from runtime.container import launch

    seen = tmp_path / "children"
    real_ready = launch._ready

    def ready(fd: int) -> bool:
        with open(seen, "a") as f:
            f.write(f"{os.getpid()}\n")
        return real_ready(fd)

    def fail(*_args, **_kwargs):
        raise KernelError("no cgroup today")

    monkeypatch.setattr(launch, "_ready", ready)
    monkeypatch.setattr(rt.cgroups, "create", fail)
    with pytest.raises(KernelError, match="no cgroup today"):
        rt.run(dict(base_spec, name="cgcreatefail"))
    monkeypatch.undo()
    children = [int(pid) for pid in seen.read_text().split()]
    assert len(children) == 2  # the detaching child and the shim-to-be, both told to stop
    for pid in children:
        launch.wait_gone(pid, 5)
        assert _exited(pid)
    assert [s for s in rt.list() if s["name"] == "cgcreatefail"] == []
    assert "cgcreatefail" not in os.listdir(rt.store.names_dir)
    assert set(rt.cgroups.list()) <= set(rt.store.ids())
