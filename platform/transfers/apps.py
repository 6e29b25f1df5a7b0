"""App config of transfers."""

from django.apps import AppConfig


class TransfersConfig(AppConfig):
    """The transfers app."""

    name = "transfers"
    default_auto_field = "django.db.models.BigAutoField"
