"""The Docker Engine API app: its URLs, its listener and its management command."""

from django.apps import AppConfig


class DockerApiConfig(AppConfig):
    """Docker Engine API compatibility (docs/docker-api.md)."""

    name = "dockerapi"
    verbose_name = "Docker Engine API"
