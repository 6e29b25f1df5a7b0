"""The request serializers produce exactly runtime ContainerSpec.to_dict() and refuse unknown fields."""

import pytest
from rest_framework.exceptions import ValidationError

from containers.api.spec import parse_spec

VALID = [
    {"image": "busybox"},
    {
        "image": "busybox:latest",
        "name": "tp-x1",
        "command": ["sh", "-c", "sleep 1"],
        "env": ["A=1", "B="],
        "labels": {"app": "web"},
        "limits": {"memory": "64m", "pids": 10, "cpu_quota": 50000, "cpu_period": 100000},
        "mounts": [
            {"type": "tmpfs", "target": "/t", "options": ["size=1m"]},
            {"type": "volume", "source": "v1", "target": "/v"},
        ],
        "network": {"ports": [{"container_port": 80, "host_port": 8080}], "dns": ["1.1.1.1"]},
        "cap_add": ["cap_net_admin"],
        "cap_drop": ["all"],
        "restart": {"name": "on-failure", "max_retries": 3},
        "tty": True,
    },
]


@pytest.mark.parametrize("body", VALID)
def test_same_shape_as_runtime(body):
    from runtime.spec import ContainerSpec  # the test process may import it; the web never does

    assert parse_spec(dict(body)) == ContainerSpec.from_dict(dict(body)).to_dict()


@pytest.mark.parametrize(
    "body",
    [
        {"image": "busybox", "Binds": ["/:/host"]},
        {"image": "busybox", "HostConfig": {"Privileged": True}},
        {"image": "busybox", "limits": {"memory": "64m", "kernel_memory": 1}},
        {
            "image": "busybox",
            "mounts": [{"type": "bind", "source": "/", "target": "/h", "propagation": "shared"}],
        },
        {"image": "busybox", "network": {"mode": "bridge", "sysctls": {}}},
        {"image": "busybox", "privileged": "true"},
        {"image": "busybox", "cap_add": ["NOT_A_CAP"]},
        {"image": "busybox", "namespaces": {"net": "host"}},
        {"image": "busybox", "env": ["NOEQUALS"]},
        {"image": ""},
        [],
        "image=busybox",
    ],
)
def test_refused(body):
    with pytest.raises(ValidationError):
        parse_spec(body)


def test_capability_names_match_the_runtime():
    # The web may not import the runtime, so the list lives twice; this keeps the copies equal.
    from containers.api import spec as web_spec
    from runtime import spec as runtime_spec

    assert set(runtime_spec.ALL_CAPABILITIES) | {"ALL"} == web_spec.ALL_CAPS
