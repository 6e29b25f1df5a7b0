"""Helpers shared by the dashboard tests (a module with a unique name, importable from tests)."""

from containers.models import Container

PASSWORD = "td-password-1"


def make_container(team, host, name, **extra):
    """A container row as if the agent had created it."""
    labels = extra.pop("labels", {})
    spec = {
        "image": extra.pop("image", "busybox"),
        "name": name,
        "labels": labels,
        "tty": extra.pop("tty", False),
    }
    return Container.objects.create(
        team=team, host=host, name=name, image=spec["image"], spec=spec, labels=labels, **extra
    )
