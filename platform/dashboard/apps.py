"""App config of the dashboard."""

from django.apps import AppConfig


def _load_agent_streams(**kwargs):
    """In a Celery worker (the host agent), register agent.relay_terminal (agent/streams.py)."""
    import agent.streams  # noqa: F401


class DashboardConfig(AppConfig):
    """HTML pages, login lockout and the Channels consumers of the web terminal."""

    name = "dashboard"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        # worker_init fires only in a Celery worker, after Django is set up and before the
        # pool starts; the web process never loads the agent's module (nor `runtime`).
        from celery.signals import worker_init

        worker_init.connect(_load_agent_streams, weak=False, dispatch_uid="berth-dashboard-streams")
