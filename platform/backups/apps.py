from django.apps import AppConfig


class BackupsConfig(AppConfig):
    """Backup sets of the whole platform, their schedule, retention and restore."""

    name = "backups"
    default_auto_field = "django.db.models.BigAutoField"
