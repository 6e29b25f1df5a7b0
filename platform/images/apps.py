"""App config of images."""

from django.apps import AppConfig


class ImagesConfig(AppConfig):
    """The images app."""

    name = "images"
    default_auto_field = "django.db.models.BigAutoField"
