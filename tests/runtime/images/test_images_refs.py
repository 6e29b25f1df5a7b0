"""Reference parsing and `docker import -c` changes: pure functions, no kernel needed."""

import pytest

from runtime.errors import InvalidSpec
from runtime.images.changes import apply_changes
from runtime.images.reference import normalize_ref


@pytest.mark.parametrize(
    "ref, expected",
    [
        ("busybox", "busybox:latest"),
        ("busybox:1.36", "busybox:1.36"),
        ("docker.io/library/busybox:1", "busybox:1"),
        ("library/busybox", "busybox:latest"),
        ("docker.io/team/app", "team/app:latest"),
        ("localhost:5000/app", "localhost:5000/app:latest"),
        ("registry.local:5000/a/b:v1.2-rc_3", "registry.local:5000/a/b:v1.2-rc_3"),
    ],
)
def test_normalize_ref(ref, expected):
    assert normalize_ref(ref) == expected


@pytest.mark.parametrize(
    "ref", ["", "UPPER", "a b", "app:", "app:-bad", "app@sha256:00", " app", "a//b", "-a"]
)
def test_bad_refs_are_refused(ref):
    with pytest.raises(InvalidSpec):
        normalize_ref(ref)


def test_changes_build_the_config():
    config = {"Env": ["A=0", "KEEP=1"]}
    apply_changes(
        config, ["ENV A 1 2", "env B=x C='y z'", "CMD echo hi", "EXPOSE 8080/UDP 22", "LABEL a=1"]
    )
    assert config == {
        "Env": ["KEEP=1", "A=1 2", "B=x", "C=y z"],
        "Cmd": ["/bin/sh", "-c", "echo hi"],
        "ExposedPorts": {"8080/udp": {}, "22/tcp": {}},
        "Labels": {"a": "1"},
    }


@pytest.mark.parametrize(
    "change, message",
    [
        ("RUN x", "not supported"),
        ("CMD", "needs an argument"),
        ('CMD ["a", 1]', "JSON list of strings"),
        ("EXPOSE 99999", "invalid port"),
        ("LABEL novalue", "KEY=VALUE"),
        ("ENV A='unterminated", "ENV"),
    ],
)
def test_bad_changes_are_refused(change, message):
    with pytest.raises(InvalidSpec, match=message):
        apply_changes({}, [change])
