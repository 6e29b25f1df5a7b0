"""The authorization generation moves from Redis into the database (rbac/generation.py)."""

import secrets

from django.db import migrations, models


def first_generation(apps, schema_editor):
    AuthzGeneration = apps.get_model("rbac", "AuthzGeneration")
    AuthzGeneration.objects.get_or_create(pk=1, defaults={"value": secrets.token_hex(8)})


class Migration(migrations.Migration):
    dependencies = [("rbac", "0006_session3_permissions")]

    operations = [
        migrations.CreateModel(
            name="AuthzGeneration",
            fields=[
                (
                    "id",
                    models.PositiveSmallIntegerField(
                        default=1, editable=False, primary_key=True, serialize=False
                    ),
                ),
                ("value", models.CharField(max_length=32)),
            ],
            options={"verbose_name": "authorization generation"},
        ),
        migrations.RunPython(first_generation, migrations.RunPython.noop),
    ]
