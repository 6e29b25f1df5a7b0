"""App config of api."""

from django.apps import AppConfig


class ApiConfig(AppConfig):
    """Shared REST plumbing; registers the OpenAPI extensions."""

    name = "api"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from api import schema  # noqa: F401  (registers the extension by import)
