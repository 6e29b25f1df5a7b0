"""App config of the dashboard."""

from django.apps import AppConfig


class DashboardConfig(AppConfig):
    """HTML pages, login lockout and the Channels consumers of the web terminal."""

    name = "dashboard"
    default_auto_field = "django.db.models.BigAutoField"
