"""POST /networks/{id}/connect and /disconnect: `docker network connect/disconnect` onto the
same service as the REST API (networks/joins.py: container.change, audited, done by the host)."""

from django.http import HttpResponse

from dockerapi.containers import finish
from dockerapi.create_fields import ENDPOINT_FIELDS
from dockerapi.errors import bad_request, not_supported
from dockerapi.networks import _find
from dockerapi.refs import find_container
from networks import joins

_CONNECT_FIELDS = {"Container", "EndpointConfig"}


def _network(call, ref):
    found = _find(call, ref, "container.change")
    if isinstance(found, str):
        raise not_supported(f"connecting containers to the pre-defined network {found}")
    return found


def _container_ref(body: dict) -> str:
    ref = body.get("Container")
    if not isinstance(ref, str) or not ref:
        raise bad_request("Container is required")
    return ref


def _endpoint(body: dict) -> tuple[list, str | None]:
    """(aliases, fixed IPv4 address) of an EndpointConfig; what Berth cannot honour is refused."""
    config = body.get("EndpointConfig") or {}
    if not isinstance(config, dict):
        raise bad_request("invalid EndpointConfig")
    unknown = sorted(set(config) - ENDPOINT_FIELDS)
    if unknown:
        raise bad_request(f"unknown field {unknown[0]!r} in EndpointConfig")
    if config.get("Links"):
        raise not_supported("links given at network connect (give them at create)")
    if config.get("MacAddress") or config.get("DriverOpts"):
        raise not_supported("MacAddress and DriverOpts at network connect")
    aliases = config.get("Aliases") or []
    if not isinstance(aliases, list):
        raise bad_request("Aliases must be a list")
    ipam = config.get("IPAMConfig") or {}
    if not isinstance(ipam, dict):
        raise bad_request("invalid IPAMConfig")
    if ipam.get("IPv6Address") or ipam.get("LinkLocalIPs"):
        raise not_supported("IPv6 and link-local addresses")
    return aliases, ipam.get("IPv4Address") or None


def connect(call, ref):
    """POST /networks/{id}/connect {Container, EndpointConfig}."""
    network = _network(call, ref)
    body = call.json()
    unknown = sorted(set(body) - _CONNECT_FIELDS)
    if unknown:
        raise bad_request(f"unknown field {unknown[0]!r}")
    container = find_container(call, _container_ref(body), "container.change")
    aliases, address = _endpoint(body)
    op = joins.do_connect(
        container,
        network,
        aliases=aliases,
        ip_address=address,
        acting_user=call.user,
        summary=call.summary(),
    )
    finish(op)
    return HttpResponse(status=200)


def disconnect(call, ref):
    """POST /networks/{id}/disconnect {Container, Force}."""
    network = _network(call, ref)
    body = call.json()
    unknown = sorted(set(body) - {"Container", "Force"})
    if unknown:
        raise bad_request(f"unknown field {unknown[0]!r}")
    container = find_container(call, _container_ref(body), "container.change")
    op = joins.do_disconnect(container, network, acting_user=call.user, summary=call.summary())
    finish(op)
    return HttpResponse(status=200)
