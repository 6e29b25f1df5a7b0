"""/_ping, /version, /info."""

import os
import platform as stdlib_platform

from django.http import HttpResponse, JsonResponse

from containers.models import Container
from containers.not_removed import NOT_REMOVED
from images.models import Image
from rbac import gate

BERTH_VERSION = "0.1.0"
ENGINE_VERSION = "27.5.0-berth"  # what `docker version` shows as the server's version


def ping(call):
    """`OK` with the newest API version Berth speaks (the client negotiates down to it)."""
    from dockerapi.router import MAX_VERSION

    answer = HttpResponse("OK", content_type="text/plain; charset=utf-8")
    answer["API-Version"] = MAX_VERSION
    answer["Docker-Experimental"] = "false"
    answer["Ostype"] = "linux"
    answer["Builder-Version"] = "1"
    answer["Cache-Control"] = "no-cache, no-store, must-revalidate"
    return answer


def version(call):
    """Versions of the server, its API range and the platform."""
    from dockerapi.router import MAX_VERSION, MIN_VERSION

    uname = os.uname()
    details = {"ApiVersion": MAX_VERSION, "MinAPIVersion": MIN_VERSION, "Os": "linux"}
    return JsonResponse(
        {
            "Platform": {"Name": f"Berth {BERTH_VERSION}"},
            "Components": [{"Name": "Engine", "Version": ENGINE_VERSION, "Details": details}],
            "Version": ENGINE_VERSION,
            "ApiVersion": MAX_VERSION,
            "MinAPIVersion": MIN_VERSION,
            "GitCommit": "berth",
            "GoVersion": f"python{stdlib_platform.python_version()}",
            "Os": "linux",
            "Arch": _arch(uname.machine),
            "KernelVersion": uname.release,
            "Experimental": False,
            "BuildTime": "",
        }
    )


def _arch(machine: str) -> str:
    return {"x86_64": "amd64", "aarch64": "arm64"}.get(machine, machine)


def info(call):
    """What the caller may see: their containers' counts, images; the web host's basics."""
    gate.authorize(call.user, "container.view", resource="container", summary=call.summary())
    mine = gate.restrict(Container.objects.all(), call.user, "container.view").filter(NOT_REMOVED)
    states = list(mine.values_list("observed_state", flat=True))
    images = gate.restrict(Image.objects.all(), call.user, "image.view").count()
    uname = os.uname()
    return JsonResponse(
        {
            "ID": "berth",
            "Name": "berth",
            "Containers": len(states),
            "ContainersRunning": states.count("running"),
            "ContainersPaused": states.count("paused"),
            "ContainersStopped": len(states) - states.count("running") - states.count("paused"),
            "Images": images,
            "Driver": "overlay2",
            "ServerVersion": ENGINE_VERSION,
            "OperatingSystem": f"Berth {BERTH_VERSION}",
            "OSType": "linux",
            "Architecture": uname.machine,
            "KernelVersion": uname.release,
            "NCPU": os.cpu_count() or 1,
            "MemTotal": _mem_total(),
            "IndexServerAddress": "https://index.docker.io/v1/",
            "SecurityOptions": ["name=seccomp,profile=builtin", "name=no-new-privileges"],
            "Labels": [],
            "Warnings": [],
        }
    )


def _mem_total() -> int:
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def plugins(call):
    """GET /plugins: Berth runs no Docker plugins."""
    return JsonResponse([], safe=False)


def plugin(call, name):
    """GET /plugins/{name}/json: none exists (`docker inspect` asks after the other kinds)."""
    from dockerapi.errors import DockerError

    raise DockerError(404, f"No such plugin: {name}")
