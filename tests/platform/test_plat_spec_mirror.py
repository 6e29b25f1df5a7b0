"""The web's spec serializer mirrors the runtime's ContainerSpec field for field.

The web never imports `runtime`, so the two are written twice; this test (which may import
both) keeps them from drifting: a field one side accepts and the other refuses would pass the
gate and fail on the host.
"""

import dataclasses

import pytest
from rest_framework.exceptions import ValidationError

from containers.api.spec import ContainerSpecSerializer, parse_spec
from runtime.errors import InvalidSpec
from runtime.spec import ContainerSpec


def test_the_same_fields_on_both_sides():
    web = set(ContainerSpecSerializer().fields)
    host = {f.name for f in dataclasses.fields(ContainerSpec)}
    assert web == host, f"only on the web: {web - host}; only on the host: {host - web}"


def test_auto_remove_round_trips_and_refuses_a_restart_policy():
    parsed = parse_spec({"image": "busybox", "auto_remove": True})
    assert parsed["auto_remove"] is True
    assert ContainerSpec.from_dict(parsed).auto_remove is True
    clash = {"image": "busybox", "auto_remove": True, "restart": {"name": "always"}}
    with pytest.raises(ValidationError, match="auto-remove"):
        parse_spec(clash)
    with pytest.raises(InvalidSpec, match="auto-remove"):
        ContainerSpec.from_dict(clash)
