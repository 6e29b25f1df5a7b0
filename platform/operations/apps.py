"""App config of operations."""

from django.apps import AppConfig


class OperationsConfig(AppConfig):
    """The operations app."""

    name = "operations"
    default_auto_field = "django.db.models.BigAutoField"
