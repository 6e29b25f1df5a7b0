"""Whether checkpoint/restore can run here: a CRIU that works on this kernel (tests skip if not)."""


def criu_problem() -> str:
    """Why CRIU tests cannot run on this machine ("" when a working CRIU is installed)."""
    from runtime.container import criu
    from runtime.errors import KernelError

    try:
        criu.binary()
    except KernelError as err:
        return str(err)
    return ""
