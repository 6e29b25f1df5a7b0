"""The shared two-host fleet (tests/fleet/fleet.py); other test directories import it the same way."""

from tests.fleet.fleet import fleet

__all__ = ["fleet"]  # a fixture, found by pytest here
