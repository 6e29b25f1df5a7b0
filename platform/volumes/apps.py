"""App config of volumes."""

from django.apps import AppConfig


class VolumesConfig(AppConfig):
    """The volumes app."""

    name = "volumes"
    default_auto_field = "django.db.models.BigAutoField"
