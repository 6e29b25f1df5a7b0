"""The spec serializer's kept fields (built once per thread) validate exactly as DRF's own.

containers.api.spec.KeptFields skips DRF's deep copy of every field per request; these tests
compare its answers (validated data or the whole error detail) with a serializer that builds
its fields the ordinary way, body after body on one thread and from several threads at once.
"""

from concurrent.futures import ThreadPoolExecutor

from rest_framework import serializers

from containers.api.serializers import ContainerCreateSerializer
from containers.api.spec import ContainerSpecSerializer

BODIES = [
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
        "restart": {"name": "on-failure", "max_retries": 3},
        "healthcheck": {"test": ["CMD", "true"]},
    },
    {"image": "busybox", "Binds": ["/:/host"]},
    {"image": "busybox", "limits": {"memory": "1k", "pids": 0}},
    {"image": "busybox", "limits": {"memory_swap": "64m"}},
    {"image": "busybox", "mounts": [{"type": "bind", "source": "rel", "target": "/h"}]},
    {"image": "busybox", "mounts": [{"type": "tmpfs", "target": "/a"}] * 2},
    {"image": "busybox", "network": {"mode": "none", "ports": [{"container_port": 80}]}},
    {"image": "busybox", "network": {"ports": [{"container_port": 0, "host_port": "x"}]}},
    {"image": "busybox", "privileged": "true", "cap_add": ["NOT_A_CAP"], "env": ["NOEQ"]},
    {"image": "busybox", "namespaces": {"net": "host", "user": "container:x"}},
    {"image": "busybox", "auto_remove": True, "restart": {"name": "always"}},
    {"image": "", "name": "a" * 64 + "0" * 0, "working_dir": "../x"},
    {"image": "busybox", "healthcheck": {"test": "nope", "interval": -1}},
    [],
    "image=busybox",
]


class FreshSpec(ContainerSpecSerializer):
    """The same serializer with DRF's ordinary per-instance fields."""

    fields = serializers.Serializer.fields


def outcome(serializer_class, body):
    serializer = serializer_class(data=body)
    if serializer.is_valid():
        return "valid", serializer.validated_data
    return "invalid", serializer.errors


def test_kept_fields_answer_as_drf_does():
    assert type(ContainerSpecSerializer().fields) is type(FreshSpec().fields)
    for _ in range(2):  # the second round uses fields that validated every body already
        for body in BODIES:
            assert outcome(ContainerSpecSerializer, body) == outcome(FreshSpec, body), body


def test_kept_fields_nested_in_the_create_body():
    for body in BODIES:
        wrapped = {"team": "t", "start": True, "spec": body}
        kept = outcome(ContainerCreateSerializer, wrapped)
        fresh = outcome(FreshSpec, body)
        if fresh[0] == "valid":
            assert kept[0] == "valid" and kept[1]["spec"] == fresh[1], body
        else:
            assert kept == ("invalid", {"spec": fresh[1]}), body


def test_kept_fields_from_several_threads():
    expected = [outcome(FreshSpec, body) for body in BODIES]

    def round_(_):
        return [outcome(ContainerSpecSerializer, body) for body in BODIES * 5]

    with ThreadPoolExecutor(4) as pool:
        for answers in pool.map(round_, range(8)):
            assert answers == expected * 5
