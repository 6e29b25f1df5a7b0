"""The name under which this machine's agent registers: one place decides it."""

import os
import socket

from config.celery import host_queue


def this_host() -> str:
    """BERTH_AGENT_HOST, else the short host name (what `hostname -s` prints)."""
    return os.environ.get("BERTH_AGENT_HOST") or socket.gethostname().split(".")[0]


def queue_for(host_name: str) -> str:
    """The Celery queue that the agent of `host_name` consumes."""
    return host_queue(host_name)
