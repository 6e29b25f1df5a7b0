"""Relay between the local terminal and a container (attach socket or exec pty)."""

from __future__ import annotations

import contextlib
import fcntl
import os
import select
import signal
import struct
import sys
import termios
import tty

DETACH = b"\x10\x11"  # ctrl-p ctrl-q


@contextlib.contextmanager
def raw_terminal(enabled: bool):
    """Put stdin in raw mode while relaying a TTY, restoring it afterwards."""
    if not enabled or not os.isatty(0):
        yield
        return
    saved = termios.tcgetattr(0)
    try:
        tty.setraw(0)
        yield
    finally:
        termios.tcsetattr(0, termios.TCSADRAIN, saved)


def copy_window_size(to_fd: int) -> None:
    """Give the container's pty the size of ours."""
    if os.isatty(0):
        with contextlib.suppress(OSError):
            fcntl.ioctl(to_fd, termios.TIOCSWINSZ, fcntl.ioctl(0, termios.TIOCGWINSZ, b"\0" * 8))


def window_size() -> tuple[int, int] | None:
    """(cols, rows) of our terminal, None when stdin is not one."""
    if not os.isatty(0):
        return None
    with contextlib.suppress(OSError):
        rows, cols = struct.unpack("HHHH", fcntl.ioctl(0, termios.TIOCGWINSZ, b"\0" * 8))[:2]
        if rows and cols:
            return cols, rows
    return None


@contextlib.contextmanager
def follow_window(resize):
    """Call resize(cols, rows) now and whenever our terminal changes size (SIGWINCH)."""

    def send(*_):
        size = window_size()
        if size:
            with contextlib.suppress(Exception):  # a stopped container cannot be resized
                resize(*size)

    if window_size() is None:
        yield
        return
    previous = signal.signal(signal.SIGWINCH, send)
    try:
        send()
        yield
    finally:
        signal.signal(signal.SIGWINCH, previous)


def relay(read_fd: int, write_fd: int, send_input: bool, detach_keys: bool = True) -> str:
    """Copy read_fd -> stdout and stdin -> write_fd until EOF; returns "eof" or "detached"."""
    watch = [read_fd] + ([0] if send_input else [])
    pending = b""
    while True:
        ready, _, _ = select.select(watch, [], [])
        if read_fd in ready:
            try:
                data = os.read(read_fd, 65536)
            except OSError:
                data = b""
            if not data:
                return "eof"
            os.write(1, data)
        if 0 in ready:
            data = os.read(0, 4096)
            if not data:
                watch.remove(0)
                with contextlib.suppress(OSError):
                    if write_fd != read_fd:
                        os.close(write_fd)
                continue
            if detach_keys:
                data = pending + data
                pending = b""
                if DETACH in data:
                    before = data[: data.index(DETACH)]
                    if before:
                        os.write(write_fd, before)
                    return "detached"
                if data.endswith(DETACH[:1]):
                    pending, data = data[-1:], data[:-1]
            if data:
                os.write(write_fd, data)


def stdout_is_tty() -> bool:
    """Whether our stdout is a terminal."""
    return sys.stdout.isatty()
