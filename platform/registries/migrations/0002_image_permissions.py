"""Give the built-in roles the image permissions added with registries (idempotent)."""

from django.db import migrations

ADDED = {
    "operator": ["image.pull"],
    "developer": ["image.pull", "image.build"],
}


def add_permissions(apps, schema_editor):
    Role = apps.get_model("rbac", "Role")
    for name, codes in ADDED.items():
        for role in Role.objects.filter(name=name, builtin=True):
            missing = [code for code in codes if code not in role.permissions]
            if missing:
                role.permissions = [*role.permissions, *missing]
                role.save(update_fields=["permissions"])


def remove_permissions(apps, schema_editor):
    Role = apps.get_model("rbac", "Role")
    for name, codes in ADDED.items():
        for role in Role.objects.filter(name=name, builtin=True):
            role.permissions = [code for code in role.permissions if code not in codes]
            role.save(update_fields=["permissions"])


class Migration(migrations.Migration):
    dependencies = [("registries", "0001_initial"), ("rbac", "0002_default_roles")]

    operations = [migrations.RunPython(add_permissions, remove_permissions)]
