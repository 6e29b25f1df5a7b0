"""Build images from Dockerfiles with a layer cache; commit, history and prune."""

from runtime.build.builder import Builder, BuildResult
from runtime.build.dockerfile import parse as parse_dockerfile
from runtime.build.errors import BuildError, ContextError, DockerfileError

__all__ = [
    "BuildError",
    "BuildResult",
    "Builder",
    "ContextError",
    "DockerfileError",
    "parse_dockerfile",
]
