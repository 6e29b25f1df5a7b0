"""Errors of a build: each names the Dockerfile line or the step that failed."""

from runtime.errors import BerthError, InvalidSpec


class DockerfileError(InvalidSpec):
    """The Dockerfile does not parse or uses an instruction or flag Berth does not know."""


class ContextError(InvalidSpec):
    """The build context is missing, unreadable, or a path in it escapes it."""


class BuildError(BerthError):
    """A build step failed (a RUN exited non-zero, a COPY source is missing, ...)."""
