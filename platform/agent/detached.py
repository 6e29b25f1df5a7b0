"""Read-style calls that mostly wait, run apart from the worker (issue 20).

A non-interactive exec runs its command to the end, however long the command takes. Run in the
task, it would hold one of the short lane's few pool processes all that time, and four of them
would stall every create, start and stop of the host. So the task hands the call to a thread
of its pool process and returns the process to its queue at once (Celery's `Ignore`: the worker
records nothing); the thread stores the call's answer, or its refusal, under the task's id in
the result backend when the command ends, exactly as the worker would have, and the web's
`dispatch.call_host` waiting on that id gets it. Like the waiting stops (agent/waiting.py),
waiting is not work.

At most MAX_RUNNING such calls run in one pool process; beyond that the host answers busy
(503) rather than start threads without end.
"""

import logging
import threading

from celery.exceptions import Ignore
from django.db import close_old_connections

log = logging.getLogger(__name__)

MAX_RUNNING = 32
_slots = threading.BoundedSemaphore(MAX_RUNNING)


class HostBusy(Exception):
    """Too many detached calls run on this host already (the web answers 503)."""


def run(task, work) -> None:
    """Run `work()` in a thread as `task`'s answer and free the worker now (raises Ignore)."""
    if not _slots.acquire(blocking=False):
        raise HostBusy(f"{MAX_RUNNING} commands run on this host's worker already; try again")
    request = task.request  # this call's context: it outlives the task's return
    task_id, backend = request.id, task.backend

    def body():
        try:
            result = work()
        except Exception as exc:
            # The same record the worker writes for a task that raised: the web rebuilds
            # the refusal by its class name (operations/dispatch.HOST_REFUSALS).
            backend.mark_as_failure(task_id, exc, request=request)
        else:
            backend.mark_as_done(task_id, result, request=request)
        finally:
            _slots.release()
            close_old_connections()

    try:
        threading.Thread(target=body, name=f"berth-detached-{task_id}", daemon=True).start()
    except Exception:
        _slots.release()
        raise
    raise Ignore()
