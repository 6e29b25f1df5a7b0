"""Errors of registry traffic: each names the registry and what to do about it."""

from runtime.errors import BerthError, ImageError, NotFound


class RegistryError(BerthError):
    """A registry refused a request, answered nonsense or could not be reached."""


class RegistryAuthError(RegistryError):
    """The registry (or its token server) refused the credentials or the scope."""


class ManifestNotFound(NotFound):
    """The repository, tag or digest does not exist in the registry."""


class PlatformNotFound(NotFound):
    """An image index lists no image for this host's platform."""


class DigestMismatch(ImageError):
    """A downloaded manifest or blob does not hash to the digest it was asked for."""
