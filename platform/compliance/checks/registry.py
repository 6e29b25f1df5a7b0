"""The check registry: every check with its stable id, in declaration order."""

from collections.abc import Callable
from dataclasses import dataclass

TARGETS = ("container", "image", "site")


@dataclass(frozen=True)
class Check:
    """One compliance rule. `test` returns None when the object follows it, else why not."""

    id: str
    title: str
    severity: str
    target: str  # container | image | site
    remediation: str
    cis: str = ""  # CIS Docker Benchmark v1.6.0 recommendation, where one applies
    test: Callable | None = None

    def as_dict(self) -> dict:
        """The check as the API and the command print it."""
        return {
            "id": self.id,
            "title": self.title,
            "severity": self.severity,
            "target": self.target,
            "cis": self.cis,
            "remediation": self.remediation,
        }


CHECKS: list[Check] = []


def check(id, title, severity, target, remediation, cis=""):
    """Decorator: register `test` as the check `id`."""
    assert target in TARGETS

    def register(test):
        if any(c.id == id for c in CHECKS):
            raise ValueError(f"duplicate compliance check id {id}")
        CHECKS.append(Check(id, title, severity, target, remediation, cis, test))
        return test

    return register


def by_id(check_id: str) -> Check | None:
    """The check with this id, or None."""
    _load()
    return next((c for c in CHECKS if c.id == check_id), None)


def for_target(target: str) -> list[Check]:
    """The checks of one target kind, in declaration order."""
    _load()
    return [c for c in CHECKS if c.target == target]


def _load():
    # The modules register their checks when imported; importing them here keeps one entry point.
    from compliance.checks import containers, images, site  # noqa: F401
