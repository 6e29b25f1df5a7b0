"""The pool process keeps its database connection from one task to the next.

Celery's Django fixup closes every connection before and after each task. On SQLite each new
connection parses the whole schema on its first statement (0.7 ms median here, 2.7 ms at p90
on a loaded machine), and every operation paid it at least once; a PostgreSQL connection
without a pool costs a TCP and authentication round trip. Here the fixup closes only every
KEEP_TASKS tasks, and after each task a connection is closed at once when it is no longer
fit to serve the next one: an error left it unusable, or a transaction was left open.
"""

import logging

from celery.signals import task_postrun, worker_process_init
from django.db import connections

log = logging.getLogger(__name__)
# The fixup closes after 2 * KEEP_TASKS of its before/after-task calls (KEEP_TASKS tasks).
KEEP_TASKS = 500


@worker_process_init.connect
def _keep_connections(**_):
    """Tell Celery's Django fixup of this worker to reuse connections across tasks."""
    from config.celery import app

    for fixup in app._fixups or []:
        if fixup is not None and hasattr(fixup, "worker_fixup"):
            fixup.worker_fixup.db_reuse_max = KEEP_TASKS


@task_postrun.connect
def _close_unfit(**_):
    """Close a connection that must not serve the next task (the fixup no longer does)."""
    for conn in connections.all(initialized_only=True):
        if conn.connection is None:
            continue
        if conn.in_atomic_block or not conn.get_autocommit():
            log.warning("a task left a transaction open on %s; closing it", conn.alias)
            conn.close()
        elif conn.errors_occurred and not conn.is_usable():
            conn.close()
