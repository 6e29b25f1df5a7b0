"""The one door of the Docker API: version check, token, route table, Docker-style errors.

Every path the docker CLI and the SDKs call arrives here (dockerapi/urls.py). The request is
authenticated with a Berth API token before any handler runs; each handler then asks the gate
through the same services as the REST API. Paths Berth does not implement answer 501 naming
what is missing; nothing answers 500 for a request Berth understood.
"""

import logging
import re

from django.views.decorators.csrf import csrf_exempt

from dockerapi import (
    container_list,
    containers,
    errors,
    execs,
    images,
    images_archive,
    images_build,
    images_manage,
    images_pull,
    netjoin,
    networks,
    system,
    volumes,
)
from dockerapi.auth import authenticate
from dockerapi.call import Call
from dockerapi.extras_routes import EXTRA_ROUTES

logger = logging.getLogger(__name__)

MIN_VERSION = "1.41"
MAX_VERSION = "1.47"
_ID = r"(?P<ref>[^/]+)"

# (method, path after /v1.NN/, handler); the first match wins.
ROUTES = [
    ("GET", r"_ping", system.ping),
    ("HEAD", r"_ping", system.ping),
    ("GET", r"version", system.version),
    ("GET", r"info", system.info),
    ("GET", r"plugins", system.plugins),
    ("GET", r"plugins/(?P<name>[^/]+)/json", system.plugin),
    ("GET", r"containers/json", container_list.list_),
    ("POST", r"containers/create", containers.create),
    ("GET", rf"containers/{_ID}/json", containers.inspect),
    ("POST", rf"containers/{_ID}/start", containers.start),
    ("POST", rf"containers/{_ID}/stop", containers.stop),
    ("POST", rf"containers/{_ID}/restart", containers.restart),
    ("POST", rf"containers/{_ID}/kill", containers.kill),
    ("POST", rf"containers/{_ID}/pause", containers.pause),
    ("POST", rf"containers/{_ID}/unpause", containers.unpause),
    ("POST", rf"containers/{_ID}/wait", containers.wait),
    ("DELETE", rf"containers/{_ID}", containers.remove),
    ("GET", rf"containers/{_ID}/logs", containers.logs),
    ("POST", rf"containers/{_ID}/exec", execs.exec_create),
    ("POST", r"exec/(?P<exec_id>[^/]+)/start", execs.exec_start),
    ("GET", r"exec/(?P<exec_id>[^/]+)/json", execs.exec_inspect),
    ("POST", rf"containers/{_ID}/resize", execs.resize),
    ("POST", r"exec/(?P<exec_id>[^/]+)/resize", execs.exec_resize),
    ("GET", r"images/json", images.list_),
    ("GET", r"images/(?P<ref>.+)/json", images.inspect),
    ("POST", r"images/create", images_pull.create),
    ("GET", r"images/search", images_pull.search),
    ("POST", r"images/load", images_archive.load),
    ("GET", r"images/get", images_archive.save_many),
    ("POST", r"images/prune", images_manage.prune),
    ("POST", r"images/(?P<ref>.+)/push", images_pull.push),
    ("POST", r"images/(?P<ref>.+)/tag", images_manage.tag),
    ("GET", r"images/(?P<ref>.+)/history", images_manage.history),
    ("GET", r"images/(?P<ref>.+)/get", images_archive.save),
    ("DELETE", r"images/(?P<ref>.+)", images_manage.remove),
    ("POST", r"build", images_build.build),
    *EXTRA_ROUTES,  # stats, top, cp, rename, prune, events, df (dockerapi/extras_routes.py)
    ("GET", r"networks", networks.list_),
    ("POST", r"networks/create", networks.create),
    ("GET", rf"networks/{_ID}", networks.inspect),
    ("DELETE", rf"networks/{_ID}", networks.remove),
    ("POST", rf"networks/{_ID}/connect", netjoin.connect),
    ("POST", rf"networks/{_ID}/disconnect", netjoin.disconnect),
    ("GET", r"volumes", volumes.list_),
    ("POST", r"volumes/create", volumes.create),
    ("GET", r"volumes/(?P<name>[^/]+)", volumes.inspect),
    ("DELETE", r"volumes/(?P<name>[^/]+)", volumes.remove),
]
_COMPILED = [(method, re.compile(pattern + r"/?"), handler) for method, pattern, handler in ROUTES]

# What a 501 names for paths Berth knows about but does not serve yet.
_UNSUPPORTED = [
    (
        r"containers/[^/]+/attach(/ws)?",
        "attach on this port: it needs the upgraded connection of Berth's Docker API listener "
        "(DOCKER_HOST=tcp://127.0.0.1:2375)",
    ),
]


def _version_tuple(version: str) -> tuple[int, int]:
    major, minor = version.split(".")
    return int(major), int(minor)


def check_version(version: str) -> None:
    """400 for API versions outside 1.41 to 1.47 (as Docker words it)."""
    if _version_tuple(version) < _version_tuple(MIN_VERSION):
        raise errors.bad_request(
            f"client version {version} is too old. Minimum supported API version is "
            f"{MIN_VERSION}, please upgrade your client to a newer version"
        )
    if _version_tuple(version) > _version_tuple(MAX_VERSION):
        raise errors.bad_request(
            f"client version {version} is too new. Maximum supported API version is {MAX_VERSION}"
        )


def _unsupported(method: str, rest: str) -> errors.DockerError:
    for pattern, what in _UNSUPPORTED:
        match = re.fullmatch(pattern + r"/?", rest)
        if match:
            words = next((g for g in reversed(match.groups()) if g), rest)
            return errors.not_supported(what.format(words))
    return errors.not_supported(f"{method} /{rest}")


def route(method: str, rest: str):
    """(handler, captured arguments) for a method and path, or raise the 404/501 answer."""
    method = "GET" if method == "HEAD" and rest.strip("/") != "_ping" else method
    allowed = False
    for want, pattern, handler in _COMPILED:
        match = pattern.fullmatch(rest)
        if match is None:
            continue
        if want == method:
            return handler, match.groupdict()
        allowed = True
    if allowed:
        raise errors.DockerError(405, f"{method} is not allowed on /{rest}")
    raise _unsupported(method, rest)


@csrf_exempt
def entry(request, version: str | None = None, rest: str = ""):
    """Every Docker API request: /_ping, /version, /v1.NN/<anything>."""
    try:
        if version is not None:
            check_version(version)
        user = authenticate(request)
        handler, args = route(request.method, rest)
        call = Call(request=request, user=user, version=version or MAX_VERSION, args=args)
        answer = handler(call, **args)
    except Exception as exc:
        known = errors.from_exception(exc)
        if known is None:
            # A bug: logged with its traceback; the client gets Docker's format, not a page.
            logger.error(
                "docker api: unhandled error on %s %s", request.method, request.path, exc_info=exc
            )
            known = errors.DockerError(500, "internal error in Berth; see the server log")
        answer = errors.response(known.status, known.message)
    answer["Api-Version"] = MAX_VERSION
    answer["Server"] = "Berth"
    if request.method == "HEAD":
        answer.content = b""
    return answer
