"""App config of networks."""

from django.apps import AppConfig


class NetworksConfig(AppConfig):
    """The networks app."""

    name = "networks"
    default_auto_field = "django.db.models.BigAutoField"
