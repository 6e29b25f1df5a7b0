"""The Celery app `berth`: the web sends tasks by name; host agents consume `host.<name>` queues.

Each host has two lanes: `host.<name>` for short work (create, start, stop, exec, logs, stats,
terminal) and `host.<name>.long` for long work (pull, build, push, save, load, export,
checkpoint, volume copies, backups), each served by its own worker processes.
"""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.dev")

app = Celery("berth")
app.config_from_object("django.conf:settings", namespace="CELERY")
# Only the agent's worker imports the agent's tasks (on its import_modules signal); the web
# process sends by name and never loads them, so it never imports `runtime`, and neither does
# the control plane's worker (scripts/berth-control: BERTH_CELERY_ROLE=control).
if os.environ.get("BERTH_CELERY_ROLE") != "control":
    app.autodiscover_tasks(["agent"])

HOST_TASK_PREFIX = "agent."


def host_queue(hostname: str) -> str:
    """The queue that the agent of `hostname` consumes."""
    return f"host.{hostname}"


# Operation kinds that run on a host's long lane (queue `host.<name>.long`, its own worker
# processes), so that a pull, build or export never delays a create, start or stop. Kinds
# that start with one of LONG_KIND_PREFIXES (backup work, added by later features) go there too.
LONG_KINDS = frozenset(
    {
        "image.pull",
        "image.build",
        "image.push",
        "image.save",
        "image.import",
        "image.load",
        "image.export",
        "image.commit",
        "container.export",
        "container.checkpoint",
        "container.resume",
        "checkpoint.import",
        "checkpoint.receive",
        "container.precopy",
        "volume.export",
        "volume.import",
    }
)
LONG_KIND_PREFIXES = ("backup.",)
LONG_SUFFIX = ".long"


def is_long(kind: str) -> bool:
    """Whether operations of `kind` run on the host's long lane."""
    return kind in LONG_KINDS or kind.startswith(LONG_KIND_PREFIXES)


def lane_queue(base_queue: str, lane: str) -> str:
    """The queue of `lane` ("short" or "long") of the host whose short queue is `base_queue`."""
    return base_queue + LONG_SUFFIX if lane == "long" else base_queue


def operation_queue(base_queue: str, kind: str) -> str:
    """The queue an operation of `kind` goes to on the host whose short queue is `base_queue`."""
    return lane_queue(base_queue, "long" if is_long(kind) else "short")


def route_task(name, args, kwargs, options, task=None, **kw):
    """Route host tasks to their host's queue when the caller named a host but no queue."""
    if name.startswith(HOST_TASK_PREFIX) and not options.get("queue"):
        host = (kwargs or {}).get("host") or options.get("host")
        if host:
            return {"queue": host_queue(host)}
    return None
