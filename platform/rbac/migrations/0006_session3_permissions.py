"""Give the built-in roles this release's new permissions (recreate, compliance.view)."""

from django.db import migrations

GRANTS = {
    "operator": ["container.recreate", "compliance.view"],
    "developer": ["container.recreate", "compliance.view"],
    "viewer": ["compliance.view"],
}


def add(apps, schema_editor):
    Role = apps.get_model("rbac", "Role")
    for name, codes in GRANTS.items():
        for role in Role.objects.filter(name=name, builtin=True):
            missing = [c for c in codes if c not in role.permissions]
            if missing:
                role.permissions = [*role.permissions, *missing]
                role.save(update_fields=["permissions"])


def remove(apps, schema_editor):
    Role = apps.get_model("rbac", "Role")
    for name, codes in GRANTS.items():
        for role in Role.objects.filter(name=name, builtin=True):
            role.permissions = [p for p in role.permissions if p not in codes]
            role.save(update_fields=["permissions"])


class Migration(migrations.Migration):
    dependencies = [("rbac", "0005_container_migrate")]

    operations = [migrations.RunPython(add, remove)]
