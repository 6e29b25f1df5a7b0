"""Opt-in user namespaces: root inside is an unprivileged uid outside."""

import os

import pytest
from rt_helpers import output, run_output

from runtime.container import userns
from runtime.errors import InvalidSpec

pytestmark = pytest.mark.root

FIRST, COUNT = userns.DEFAULT_RANGE


@pytest.fixture
def uspec(base_spec):
    """The base spec with a private user namespace."""
    base_spec["namespaces"] = {"user": "private"}
    return base_spec


def _status_ids(pid: int, field: str) -> list[int]:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return [int(x) for x in line.split()[1:]]
    raise AssertionError(field)


def test_root_inside_is_mapped_uid_outside(rt, uspec):
    st = rt.run(uspec)
    assert _status_ids(st["pid"], "Uid") == [FIRST] * 4
    assert _status_ids(st["pid"], "Gid") == [FIRST] * 4
    assert os.readlink(f"/proc/{st['pid']}/ns/user") != os.readlink("/proc/self/ns/user")
    with open(f"/proc/{st['pid']}/uid_map") as f:
        assert f.read().split() == ["0", str(FIRST), str(COUNT)]
    assert output(rt, st["id"], "id", "-u").strip() == "0"
    assert output(rt, st["id"], "cat", "/proc/self/uid_map").split() == ["0", str(FIRST), str(COUNT)]
