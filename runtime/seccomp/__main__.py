"""`python -m runtime.seccomp [--cap CAP ...] [SYSCALL ...]`: size of the default filter and verdicts."""

from __future__ import annotations

import argparse
import sys

import runtime.seccomp as seccomp
from runtime.errors import BerthError
from runtime.seccomp import bpf
from runtime.spec import DEFAULT_CAPABILITIES


def main(argv: list[str]) -> int:
    """Print the program size for Docker's capabilities (plus --cap) and what each syscall gets."""
    parser = argparse.ArgumentParser(prog="python -m runtime.seccomp")
    parser.add_argument(
        "--cap", action="append", default=[], help="extra capability, e.g. SYS_ADMIN"
    )
    parser.add_argument("syscalls", nargs="*", help="syscall names or numbers")
    args = parser.parse_args(argv)
    caps = list(DEFAULT_CAPABILITIES) + args.cap
    try:
        program = seccomp.build_filter(caps)
        print(f"{len(program) // 8} instructions (limit {bpf.MAX_INSNS})")
        for name in args.syscalls:
            call = int(name) if name.isdigit() else name
            print(f"{name}: {seccomp.verdict(caps, call)}")
    except BerthError as err:
        print(err, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
