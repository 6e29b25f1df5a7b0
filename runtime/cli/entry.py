"""What `python -m runtime` and scripts/berth-runtime run: `ps` from the kept views first,
then `ps`'s own small path, then the whole command line (issue 19)."""

from __future__ import annotations


def main(argv: list[str], quick: bool = True) -> int:
    """Run one command line; `quick=False` when the caller already tried the kept views."""
    if argv[:1] == ["ps"]:
        if quick:
            from runtime.cli import quickps

            code = quickps.answer(argv)
            if code is not None:
                return code
        from runtime.cli import ps, run

        args = ps.quick_args(argv)
        if args is not None:
            return run(args)
    from runtime.cli import main as whole

    return whole(argv)
