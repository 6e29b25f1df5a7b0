"""The one `runtime.api.Runtime` of this agent process, configured from the environment."""

import functools
import logging
import os

from celery.signals import worker_process_init

log = logging.getLogger(__name__)


@functools.cache
def get_runtime():
    """Runtime(RuntimeConfig.from_env()): BERTH_ROOT, BERTH_RUN_ROOT, BERTH_PREFIX, ...

    Its forking verbs (create, run, start, restart) run in a small fork server
    (runtime/forkserver.py): forking this big process costs tens of milliseconds per
    container. BERTH_AGENT_FORKSERVER=0 keeps them in this process.
    """
    # Imported here, not at module level: only a worker that runs a task loads the runtime.
    from runtime.api import Runtime
    from runtime.config import RuntimeConfig
    from runtime.forkserver import LeanRuntime

    rt = Runtime(RuntimeConfig.from_env())
    if os.environ.get("BERTH_AGENT_FORKSERVER", "1") == "0":
        return rt
    return LeanRuntime(rt)


@worker_process_init.connect
def _start_fork_server(**_):
    # Each pool process starts its server as it starts, so no container waits for the
    # server's interpreter to start (Popen returns at once; the import runs alongside).
    try:
        rt = get_runtime()
        if hasattr(rt, "_client"):
            rt._client.ensure()
    except Exception:  # the first create starts it instead; a pool process must not die here
        log.exception("could not start the runtime's fork server")
