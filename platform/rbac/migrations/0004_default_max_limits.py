"""Give the built-in roles their limit maxima (rbac.defaults.DEFAULT_MAX_LIMITS)."""

from django.db import migrations


def set_maxima(apps, schema_editor):
    from rbac.defaults import DEFAULT_MAX_LIMITS

    Role = apps.get_model("rbac", "Role")
    for name, maxima in DEFAULT_MAX_LIMITS.items():
        Role.objects.filter(name=name, builtin=True).update(max_limits=maxima)


class Migration(migrations.Migration):
    dependencies = [("rbac", "0003_limits_and_quotas")]

    operations = [migrations.RunPython(set_maxima, migrations.RunPython.noop)]
