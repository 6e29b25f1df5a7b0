"""Container health checks: what the host agent last found (Docker's HEALTHCHECK)."""

from django.apps import AppConfig


class HealthConfig(AppConfig):
    """The health app: one row per container that has a health check."""

    default_auto_field = "django.db.models.BigAutoField"
    name = "health"
