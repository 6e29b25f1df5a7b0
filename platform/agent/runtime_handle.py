"""The one `runtime.api.Runtime` of this agent process, configured from the environment."""

import functools
import os


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
