"""Give the built-in operator role container.migrate (live migration, issue 11)."""

from django.db import migrations

CODE = "container.migrate"


def add(apps, schema_editor):
    Role = apps.get_model("rbac", "Role")
    for role in Role.objects.filter(name="operator", builtin=True):
        if CODE not in role.permissions:
            role.permissions = [*role.permissions, CODE]
            role.save(update_fields=["permissions"])


def remove(apps, schema_editor):
    Role = apps.get_model("rbac", "Role")
    for role in Role.objects.filter(name="operator", builtin=True):
        role.permissions = [p for p in role.permissions if p != CODE]
        role.save(update_fields=["permissions"])


class Migration(migrations.Migration):
    dependencies = [("rbac", "0004_default_max_limits")]

    operations = [migrations.RunPython(add, remove)]
