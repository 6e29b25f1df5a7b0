"""/volumes: the named volumes of the caller's teams."""

import secrets

from django.http import HttpResponse, JsonResponse

from containers import quotas
from dockerapi import hostres, where
from dockerapi.errors import bad_request, not_supported
from dockerapi.refs import find_named
from rbac import gate
from volumes.api.views import VolumeCreateSerializer
from volumes.models import Volume


def _shape(volume) -> dict:
    return {
        "Name": volume.name,
        "Driver": volume.driver,
        "Mountpoint": "",
        "CreatedAt": volume.created_at.isoformat().replace("+00:00", "Z"),
        # Only the labels it was given: compose warns about any label it did not set.
        "Labels": volume.labels or {},
        "Scope": "local",
        "Options": volume.options or {},
        "Status": {"State": volume.state, "Team": volume.team.name, "Host": volume.host.name},
    }


def _visible(call):
    return gate.restrict(Volume.objects.select_related("team", "host"), call.user, "volume.view")


def list_(call):
    """GET /volumes?filters= (name, label, driver)."""
    gate.authorize(call.user, "volume.view", resource="volume", summary=call.summary())
    filters = call.filters({"name", "label", "driver", "dangling"})
    found = []
    for volume in _visible(call):
        shape = _shape(volume)
        if filters.get("name") and not any(v in volume.name for v in filters["name"]):
            continue
        if filters.get("driver") and volume.driver not in filters["driver"]:
            continue
        if filters.get("dangling"):
            raise not_supported("the dangling filter")
        labels = shape["Labels"]
        if any(
            v.partition("=")[0] not in labels
            or (v.partition("=")[1] and labels[v.partition("=")[0]] != v.partition("=")[2])
            for v in filters.get("label", [])
        ):
            continue
        found.append(shape)
    return JsonResponse({"Volumes": found, "Warnings": []})


def _find(call, name, action):
    return find_named(
        call,
        Volume.objects.select_related("team", "host"),
        name,
        action,
        "volume",
        lambda v: v.name,
    )


def inspect(call, name):
    """GET /volumes/{name}."""
    volume = _find(call, name, "volume.view")
    gate.authorize(call.user, "volume.view", volume, summary=call.summary())
    return JsonResponse(_shape(volume))


def create(call):
    """POST /volumes/create (an existing volume of the caller's with that name is returned)."""
    summary = call.summary()
    gate.require(call.user, "volume.create", resource="volume", summary=summary)
    body = call.json()
    unknown = sorted(set(body) - {"Name", "Driver", "DriverOpts", "Labels", "ClusterVolumeSpec"})
    if unknown:
        raise bad_request(f"unknown field {unknown[0]!r} in the volume config")
    if body.get("ClusterVolumeSpec"):
        raise not_supported("cluster volumes")
    if body.get("Driver") not in (None, "", "local"):
        raise not_supported(f"the volume driver {body['Driver']!r}")
    name = body.get("Name") or secrets.token_hex(32)
    labels = body.get("Labels") or {}
    existing = _visible(call).filter(name=name).first()
    if existing is not None:
        gate.authorize(call.user, "volume.view", existing, summary=summary)
        return JsonResponse(_shape(existing), status=201)
    data = VolumeCreateSerializer(
        data={"name": name, "options": body.get("DriverOpts") or {}, "labels": labels}
    )
    data.is_valid(raise_exception=True)
    fields = dict(data.validated_data)
    team = where.team_for(call.user, labels)
    host = where.host_for(call.user, team, labels)
    volume = hostres.create(
        call,
        Volume,
        resource="volume",
        team=team,
        host=host,
        fields=fields,
        # Driver options that bind a host path are a bind mount in disguise: the gate checks.
        options=lambda obj: {"options": obj.options},
        # The team's volume count and size quotas, as for the REST API's create.
        quota=lambda team: quotas.enforce(team, new_volumes=1),
        summary=summary | {"body": body},
    )
    return JsonResponse(_shape(volume), status=201)


def remove(call, name):
    """DELETE /volumes/{name}?force=."""
    volume = _find(call, name, "volume.delete")
    hostres.remove(call, volume, resource="volume", params={"force": call.flag("force")})
    return HttpResponse(status=204)
