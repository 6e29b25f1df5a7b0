"""App config of directory: registers the escalation check for mapping changes."""

from django.apps import AppConfig


class DirectoryConfig(AppConfig):
    """LDAP and OIDC sign-in and the group-to-team mappings they apply."""

    name = "directory"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from rbac import checks, gate

        # A mapping hands its role to everyone in the group: grant only what you hold.
        gate.register_option_check("directory.manage", checks.check_grant)
