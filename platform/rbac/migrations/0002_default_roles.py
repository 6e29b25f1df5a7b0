"""Create the built-in roles: admin, operator, developer, viewer, auditor."""

from django.db import migrations


def create_roles(apps, schema_editor):
    from rbac.defaults import DEFAULT_ROLES

    Role = apps.get_model("rbac", "Role")
    for name, fields in DEFAULT_ROLES.items():
        Role.objects.update_or_create(name=name, defaults={**fields, "builtin": True})


def remove_roles(apps, schema_editor):
    from rbac.defaults import DEFAULT_ROLES

    apps.get_model("rbac", "Role").objects.filter(
        name__in=list(DEFAULT_ROLES), builtin=True
    ).delete()


class Migration(migrations.Migration):
    dependencies = [("rbac", "0001_initial")]

    operations = [migrations.RunPython(create_roles, remove_roles)]
