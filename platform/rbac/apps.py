"""App config of rbac: registers the escalation check with the gate."""

from django.apps import AppConfig


class RbacConfig(AppConfig):
    """Roles, bindings and the gate."""

    name = "rbac"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from rbac import checks, gate

        gate.register_option_check("role.manage", checks.check_grant)
        gate.register_option_check("team.change", checks.check_grant)
        gate.register_option_check("user.create", checks.check_grant)
        gate.register_option_check("user.change", checks.check_grant)
        gate.register_option_check("user.delete", checks.check_grant)
