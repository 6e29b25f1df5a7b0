"""The host agent: Celery tasks that run Operations on this host through `runtime`.

Only the worker imports `agent.tasks` (and through it `runtime`); the web process loads this app
for its management commands, which never touch the runtime.
"""
