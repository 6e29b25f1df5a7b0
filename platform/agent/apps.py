"""App config of the host agent."""

from django.apps import AppConfig


class AgentConfig(AppConfig):
    """Host agent tasks, reconciliation, heartbeats and the bootstrap command."""

    name = "agent"
    default_auto_field = "django.db.models.BigAutoField"
