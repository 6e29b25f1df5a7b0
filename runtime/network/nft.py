"""In-process nftables through libnftables (ctypes): one transaction per call, no `nft` exec."""

import ctypes
import threading

from runtime.errors import KernelError

_LIB_NAME = "libnftables.so.1"
_lib = None
_ctx = None
_guard = threading.Lock()  # one libnftables context is not safe to share between threads


def _load():
    global _lib, _ctx
    if _ctx is not None:
        return
    try:
        lib = ctypes.CDLL(_LIB_NAME)
    except OSError as err:
        raise KernelError(
            f"nftables library {_LIB_NAME} is missing (install libnftables1)"
        ) from err
    lib.nft_ctx_new.restype = ctypes.c_void_p
    lib.nft_ctx_new.argtypes = [ctypes.c_uint32]
    lib.nft_ctx_free.argtypes = [ctypes.c_void_p]
    lib.nft_ctx_buffer_output.argtypes = [ctypes.c_void_p]
    lib.nft_ctx_buffer_error.argtypes = [ctypes.c_void_p]
    lib.nft_ctx_get_output_buffer.argtypes = [ctypes.c_void_p]
    lib.nft_ctx_get_output_buffer.restype = ctypes.c_char_p
    lib.nft_ctx_get_error_buffer.argtypes = [ctypes.c_void_p]
    lib.nft_ctx_get_error_buffer.restype = ctypes.c_char_p
    lib.nft_run_cmd_from_buffer.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
    lib.nft_run_cmd_from_buffer.restype = ctypes.c_int
    ctx = lib.nft_ctx_new(0)
    if not ctx:
        raise KernelError("nft_ctx_new failed")
    # Buffer both streams so output and errors come back to Python instead of the terminal.
    lib.nft_ctx_buffer_output(ctx)
    lib.nft_ctx_buffer_error(ctx)
    _lib, _ctx = lib, ctx


def run(commands: str) -> str:
    """Run an nft script as one atomic transaction; return its output or raise KernelError."""
    with _guard:
        _load()
        rc = _lib.nft_run_cmd_from_buffer(_ctx, commands.encode())
        out = (_lib.nft_ctx_get_output_buffer(_ctx) or b"").decode()
        err = (_lib.nft_ctx_get_error_buffer(_ctx) or b"").decode()
    if rc != 0:
        raise KernelError(f"nftables refused the rule set: {err.strip() or 'unknown error'}")
    return out


def table_exists(family: str, name: str) -> bool:
    """True when the table `family name` exists."""
    return f"table {family} {name}" in run("list tables")


def delete_table(family: str, name: str) -> None:
    """Delete a table if it exists (add first makes the delete unconditional in one batch)."""
    run(f"add table {family} {name}\ndelete table {family} {name}\n")
