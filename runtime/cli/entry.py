"""What `python -m runtime` and scripts/berth-runtime run once `ps` could not answer from the
kept views: `ps`'s own small path, then the whole command line (issue 19)."""

from __future__ import annotations


def main(argv: list[str]) -> int:
    """Run one command line. Both callers first try `ps` from the kept views themselves
    (quickps.main), before this module is even imported."""
    if argv[:1] == ["ps"]:
        from runtime.cli import ps, run

        args = ps.quick_args(argv)
        if args is not None:
            return run(args)
    from runtime.cli import main as whole

    return whole(argv)
