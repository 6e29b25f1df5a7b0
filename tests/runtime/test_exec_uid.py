"""Which uid an exec would run as: the agent refuses root for those who may not be root."""

import pytest

from runtime.errors import InvalidSpec, InvalidState

pytestmark = pytest.mark.root


def test_exec_uid_resolves_names_in_the_container(rt, base_spec):
    st = rt.run(base_spec)
    assert rt.exec_uid(st["id"]) == 0  # busybox names no user: root
    assert rt.exec_uid(st["id"], "nobody") == 65534
    assert rt.exec_uid(st["id"], "1234:5") == 1234
    # A second name for uid 0 is still root.
    code, _ = rt.exec(st["id"], ["sh", "-c", "echo toor:x:0:0::/root:/bin/sh >> /etc/passwd"])
    assert code == 0
    assert rt.exec_uid(st["id"], "toor") == 0
    with pytest.raises(InvalidSpec, match="unable to find user ghost"):
        rt.exec_uid(st["id"], "ghost")


def test_exec_uid_never_reads_outside_the_container(rt, base_spec):
    st = rt.run(base_spec)
    # /etc/passwd made a link to the host's: resolved inside the container's root instead.
    code, _ = rt.exec(
        st["id"],
        [
            "sh",
            "-c",
            "mkdir -p /x/etc && echo 'daemon:x:7:7::/:/bin/sh' > /x/etc/passwd"
            " && rm /etc/passwd && ln -s /../../../../x/etc/passwd /etc/passwd",
        ],
    )
    assert code == 0
    assert rt.exec_uid(st["id"], "daemon") == 7  # the host's daemon is uid 1


def test_exec_uid_needs_a_running_container(rt, base_spec):
    st = rt.create(base_spec)
    with pytest.raises(InvalidState):
        rt.exec_uid(st["id"])
