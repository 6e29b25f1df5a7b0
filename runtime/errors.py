"""Errors the runtime raises: each carries a message a person can act on."""


class BerthError(Exception):
    """Base class of every runtime error; `str(err)` is the user-facing message."""

    exit_code = 125  # Docker's code for "the daemon/runtime refused"


class InvalidSpec(BerthError):
    """The container spec or a command-line flag is malformed or not allowed."""


class NotFound(BerthError):
    """No container, image, network or volume by that id or name."""


class Conflict(BerthError):
    """The name is taken, the object is in use, or a host resource is already claimed."""


class InvalidState(BerthError):
    """The container's state machine refuses this move (e.g. pause a stopped container)."""


class ImageError(BerthError):
    """An image tarball or layer is corrupt, truncated or fails its digest check."""


class CommandNotFound(BerthError):
    """The container's program does not exist in its root filesystem (Docker exits 127)."""

    exit_code = 127


class CommandNotExecutable(BerthError):
    """The container's program exists but cannot be executed (Docker exits 126)."""

    exit_code = 126


class KernelError(BerthError):
    """A system call failed while setting up or tearing down a container."""
