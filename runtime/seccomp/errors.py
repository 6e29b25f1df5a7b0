"""The error the seccomp package raises."""

from runtime.errors import BerthError


class SeccompError(BerthError):
    """A seccomp filter cannot be built for this host or the kernel refused to load it."""
