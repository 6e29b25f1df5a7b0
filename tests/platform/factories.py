"""Rows the platform tests build directly."""

from containers.models import Container


def make_container(team, host, name, **extra):
    """A container row as if created earlier (the spec in ContainerSpec.to_dict() shape)."""
    spec = {"image": "busybox", "name": name, "labels": extra.pop("labels", {})}
    return Container.objects.create(
        team=team, host=host, name=name, image="busybox", spec=spec, labels=spec["labels"], **extra
    )
