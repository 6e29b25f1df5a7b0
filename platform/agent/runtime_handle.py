"""The one `runtime.api.Runtime` of this agent process, configured from the environment."""

import functools


@functools.cache
def get_runtime():
    """Runtime(RuntimeConfig.from_env()): BERTH_ROOT, BERTH_RUN_ROOT, BERTH_PREFIX, ..."""
    # Imported here, not at module level: only a worker that runs a task loads the runtime.
    from runtime.api import Runtime
    from runtime.config import RuntimeConfig

    return Runtime(RuntimeConfig.from_env())
