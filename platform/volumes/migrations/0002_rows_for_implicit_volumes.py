"""Give every named volume that a live container mounts a row of that container's team.

Volumes made on first use had no row, so any team could mount them by name; since the gate
binds volume names to rows, they need one (the first container's team owns the volume).
"""

from django.db import migrations


def claim_implicit_volumes(apps, schema_editor):
    Container = apps.get_model("containers", "Container")
    Volume = apps.get_model("volumes", "Volume")
    seen = set(Volume.objects.values_list("host_id", "name"))
    live = Container.objects.exclude(observed_state="removed").order_by("created_at", "id")
    for container in live.iterator():
        for mount in (container.spec or {}).get("mounts") or []:
            if not isinstance(mount, dict) or mount.get("type") != "volume":
                continue
            key = (container.host_id, mount.get("source"))
            if isinstance(key[1], str) and key[1] and key not in seen:
                Volume.objects.create(
                    team_id=container.team_id, host_id=container.host_id, name=key[1], state="ready"
                )
                seen.add(key)


class Migration(migrations.Migration):
    dependencies = [
        ("volumes", "0001_initial"),
        ("containers", "0002_name_unique_unless_removed"),
    ]

    operations = [migrations.RunPython(claim_implicit_volumes, migrations.RunPython.noop)]
