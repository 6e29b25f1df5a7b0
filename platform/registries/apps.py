"""App config of registries."""

from django.apps import AppConfig


class RegistriesConfig(AppConfig):
    """The registries app."""

    name = "registries"
    default_auto_field = "django.db.models.BigAutoField"
