"""The Celery app `berth`: the web sends tasks by name; host agents consume `host.<name>` queues."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.dev")

app = Celery("berth")
app.config_from_object("django.conf:settings", namespace="CELERY")
# Only the worker imports the agent's tasks (on its import_modules signal); the web process
# sends by name and never loads them, so it never imports `runtime`.
app.autodiscover_tasks(["agent"])

HOST_TASK_PREFIX = "agent."


def host_queue(hostname: str) -> str:
    """The queue that the agent of `hostname` consumes."""
    return f"host.{hostname}"


def route_task(name, args, kwargs, options, task=None, **kw):
    """Route host tasks to their host's queue when the caller named a host but no queue."""
    if name.startswith(HOST_TASK_PREFIX) and not options.get("queue"):
        host = (kwargs or {}).get("host") or options.get("host")
        if host:
            return {"queue": host_queue(host)}
    return None
