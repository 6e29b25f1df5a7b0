"""The container list's version row and, on SQLite, the triggers that replace its token
(containers/list_version.py)."""

import secrets

from django.db import migrations, models

from containers import list_version


def create(apps, schema_editor):
    apps.get_model("containers", "ListVersion").objects.create(id=1, token=secrets.token_hex(8))
    if schema_editor.connection.vendor == "sqlite":
        for statement in list_version.trigger_statements():
            schema_editor.execute(statement)


def drop(apps, schema_editor):
    if schema_editor.connection.vendor == "sqlite":
        for statement in list_version.drop_statements():
            schema_editor.execute(statement)


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0002_limits_and_quotas"),
        ("containers", "0005_name_index"),
        ("health", "0001_initial"),
        ("hosts", "0003_join_token_pending"),
    ]

    operations = [
        migrations.CreateModel(
            name="ListVersion",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("token", models.CharField(default="", max_length=32)),
            ],
        ),
        migrations.RunPython(create, drop),
    ]
