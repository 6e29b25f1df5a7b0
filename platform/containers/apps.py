"""App config of containers: registers the option checks with the gate."""

from django.apps import AppConfig


class ContainersConfig(AppConfig):
    """Containers and the dangerous-option policy."""

    name = "containers"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from containers import checks
        from rbac import gate

        gate.register_option_check("container.create", checks.check_create)
        gate.register_option_check("container.exec", checks.check_exec)
        gate.register_option_check("container.attach", checks.check_attach)
        gate.register_option_check("volume.create", checks.check_volume)
