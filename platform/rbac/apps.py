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
        self._watch_changes()

    @staticmethod
    def _watch_changes():
        """Every saved or deleted user, token, team, membership, role or binding changes the
        generation that cached token lookups and grants depend on (rbac/generation.py)."""
        from django.db.models import signals

        from accounts.models import ApiToken, Membership, Team, User
        from rbac.generation import bump
        from rbac.models import Role, RoleBinding

        # Saves that change nothing the gate or the token check reads.
        routine = {User: {"last_login"}, ApiToken: {"last_used_at"}}

        def saved(sender, update_fields=None, **kwargs):
            if update_fields and set(update_fields) <= routine.get(sender, set()):
                return
            bump()

        for model in (User, ApiToken, Team, Membership, Role, RoleBinding):
            uid = f"rbac.generation.{model.__name__}"
            signals.post_save.connect(saved, sender=model, weak=False, dispatch_uid=uid)
            signals.post_delete.connect(bump, sender=model, weak=False, dispatch_uid=uid)
        signals.m2m_changed.connect(
            bump, sender=Team.members.through, weak=False, dispatch_uid="rbac.generation.m2m"
        )
