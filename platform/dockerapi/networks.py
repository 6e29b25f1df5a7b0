"""/networks: the caller's teams' bridge networks, plus Docker's predefined bridge, host, none."""

import hashlib

from django.http import HttpResponse, JsonResponse

from dockerapi import hostres, where
from dockerapi.errors import DockerError, bad_request, not_supported
from dockerapi.refs import find_named
from networks.api.views import NetworkCreateSerializer
from networks.models import Network
from rbac import gate

PREDEFINED = ("bridge", "host", "none")
_CREATE_FIELDS = {
    "Name",
    "CheckDuplicate",
    "Driver",
    "Scope",
    "Internal",
    "Attachable",
    "Ingress",
    "ConfigOnly",
    "ConfigFrom",
    "IPAM",
    "EnableIPv4",
    "EnableIPv6",
    "Options",
    "Labels",
}


def network_id(network) -> str:
    """A stable 64-hex Docker id for a network row."""
    return hashlib.sha256(f"berth-network-{network.pk}".encode()).hexdigest()


def _predefined_id(name: str) -> str:
    return hashlib.sha256(f"berth-predefined-{name}".encode()).hexdigest()


def _predefined(name: str) -> dict:
    return {
        "Name": name,
        "Id": _predefined_id(name),
        "Created": "0001-01-01T00:00:00Z",
        "Scope": "local",
        "Driver": "bridge" if name == "bridge" else name if name == "host" else "null",
        "EnableIPv6": False,
        "IPAM": {"Driver": "default", "Options": None, "Config": []},
        "Internal": False,
        "Attachable": False,
        "Ingress": False,
        "Containers": {},
        "Options": {},
        "Labels": {},
    }


def _shape(network) -> dict:
    config = [{"Subnet": network.subnet, "Gateway": network.gateway}] if network.subnet else []
    return {
        "Name": network.name,
        "Id": network_id(network),
        "Created": network.created_at.isoformat().replace("+00:00", "Z"),
        "Scope": "local",
        "Driver": "bridge",
        "EnableIPv6": False,
        "IPAM": {"Driver": "default", "Options": None, "Config": config},
        "Internal": False,
        "Attachable": False,
        "Ingress": False,
        "Containers": {},
        "Options": {},
        # Only the labels it was given: compose warns about any label it did not set.
        "Labels": network.labels or {},
    }


def _visible(call):
    return gate.restrict(Network.objects.select_related("team", "host"), call.user, "network.view")


def list_(call):
    """GET /networks?filters= (name, id, label, driver)."""
    gate.authorize(call.user, "network.view", resource="network", summary=call.summary())
    filters = call.filters({"name", "id", "label", "driver", "type", "scope"})
    found = [_predefined(name) for name in PREDEFINED] + [_shape(n) for n in _visible(call)]
    return JsonResponse([n for n in found if _matches(n, filters)], safe=False)


def _matches(network: dict, filters: dict) -> bool:
    if filters.get("name") and not any(v in network["Name"] for v in filters["name"]):
        return False
    if filters.get("id") and not any(network["Id"].startswith(v) for v in filters["id"]):
        return False
    if filters.get("driver") and network["Driver"] not in filters["driver"]:
        return False
    if filters.get("scope") and "local" not in filters["scope"]:
        return False
    if filters.get("type"):
        kind = "builtin" if network["Name"] in PREDEFINED else "custom"
        if kind not in filters["type"]:
            return False
    for value in filters.get("label", []):
        key, sep, want = value.partition("=")
        if key not in network["Labels"] or (sep and network["Labels"][key] != want):
            return False
    return True


def _find(call, ref, action):
    for name in PREDEFINED:
        if ref in (name, _predefined_id(name)):
            return name
    return find_named(
        call, Network.objects.select_related("team", "host"), ref, action, "network", network_id
    )


def inspect(call, ref):
    """GET /networks/{id}."""
    found = _find(call, ref, "network.view")
    if isinstance(found, str):
        gate.authorize(call.user, "network.view", resource="network", summary=call.summary())
        return JsonResponse(_predefined(found))
    gate.authorize(call.user, "network.view", found, summary=call.summary())
    return JsonResponse(_shape(found))


def create(call):
    """POST /networks/create: a bridge network of the caller's team (see dockerapi/where.py)."""
    summary = call.summary()
    gate.require(call.user, "network.create", resource="network", summary=summary)
    body = call.json()
    unknown = sorted(set(body) - _CREATE_FIELDS)
    if unknown:
        raise bad_request(f"unknown field {unknown[0]!r} in the network config")
    if body.get("Driver") not in (None, "", "bridge"):
        raise not_supported(f"the network driver {body['Driver']!r}")
    # Attachable (compose sends it) only matters to swarm: any container may join a Berth network.
    for key in ("Internal", "Ingress", "ConfigOnly", "EnableIPv6"):
        if body.get(key):
            raise not_supported(f"{key} networks")
    if body.get("ConfigFrom") or body.get("Options"):
        raise not_supported("network options (ConfigFrom, Options)")
    if body.get("Scope") not in (None, "", "local"):
        raise not_supported(f"the network scope {body['Scope']!r}")
    name = body.get("Name")
    if name in PREDEFINED:
        raise DockerError(403, f"{name} is a pre-defined network and cannot be created")
    ipam = body.get("IPAM") or {}
    if not isinstance(ipam, dict) or set(ipam) - {"Driver", "Config", "Options"}:
        raise bad_request("invalid IPAM")
    if ipam.get("Driver") not in (None, "", "default") or ipam.get("Options"):
        raise not_supported("IPAM drivers and options")
    configs = ipam.get("Config") or []
    if not isinstance(configs, list) or len(configs) > 1:
        raise not_supported("more than one IPAM config")
    config = configs[0] if configs else {}
    if not isinstance(config, dict) or set(config) - {
        "Subnet",
        "Gateway",
        "IPRange",
        "AuxiliaryAddresses",
    }:
        raise bad_request("invalid IPAM config")
    if config.get("IPRange") or config.get("AuxiliaryAddresses"):
        raise not_supported("IPRange and AuxiliaryAddresses")
    labels = body.get("Labels") or {}
    data = NetworkCreateSerializer(
        data={
            "name": name or "",
            "subnet": config.get("Subnet") or "",
            "gateway": config.get("Gateway") or "",
            "labels": labels,
        }
    )
    data.is_valid(raise_exception=True)
    fields = dict(data.validated_data)
    team = where.team_for(call.user, labels)
    host = where.host_for(call.user, team, labels)
    network = hostres.create(
        call,
        Network,
        resource="network",
        team=team,
        host=host,
        fields=fields,
        summary=summary | {"body": body},
    )
    return JsonResponse({"Id": network_id(network), "Warning": ""}, status=201)


def remove(call, ref):
    """DELETE /networks/{id}."""
    found = _find(call, ref, "network.delete")
    if isinstance(found, str):
        raise DockerError(403, f"{found} is a pre-defined network and cannot be removed")
    hostres.remove(call, found, resource="network")
    return HttpResponse(status=204)
