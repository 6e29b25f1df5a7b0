"""Helpers shared by the runtime tests."""

import time


def wait_log(rt, ref, text: bytes, timeout: float = 10.0) -> None:
    """Wait until the container's log holds a line (the program reached that point)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(b == text for _, _, b in rt.logs(ref)):
            return
        time.sleep(0.02)
    raise AssertionError(f"{text!r} never appeared in the log")


def output(rt, ref, *argv, code: int = 0) -> str:
    """exec `argv` in the container, check its exit code, return its output as text."""
    got, out = rt.exec(ref, list(argv))
    assert got == code, out
    return out.decode()


def run_output(rt, spec: dict) -> tuple[int, str]:
    """Run a container to completion; return (exit code, stdout+stderr text)."""
    st = rt.run(spec)
    code = rt.wait(st["id"])
    return code, "".join(b.decode() for _, _, b in rt.logs(st["id"]))
