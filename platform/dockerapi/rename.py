"""POST /containers/{id}/rename?name=: the REST API's rename (container.change) through the gate."""

from django.http import HttpResponse

from containers import services
from containers.api.serializers import RenameSerializer
from dockerapi.containers import finish
from dockerapi.errors import DockerError, bad_request
from dockerapi.refs import find_container


def rename(call, ref):
    """Give the container a new name; 409 when the name is taken on its host (as Docker)."""
    new_name = (call.query.get("name") or "").lstrip("/")
    if not new_name:
        raise bad_request("rename needs a new name (?name=)")
    body = RenameSerializer(data={"name": new_name})
    if not body.is_valid():
        raise bad_request(f"invalid container name {new_name!r} ([a-zA-Z0-9][a-zA-Z0-9_.-]+)")
    container = find_container(call, ref, "container.change")
    if container.name == new_name:
        raise DockerError(409, "Renaming a container with the same name as its current name")
    op = services.do_rename_container(
        container, new_name, acting_user=call.user, summary=call.summary(new_name=new_name)
    )
    finish(op)
    return HttpResponse(status=204)
