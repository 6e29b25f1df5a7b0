from django.apps import AppConfig


class DockertlsConfig(AppConfig):
    """TLS for the Docker API listener: Berth's CA and the client certificates it issued."""

    default_auto_field = "django.db.models.BigAutoField"
    name = "dockertls"
    verbose_name = "Docker API TLS certificates"
