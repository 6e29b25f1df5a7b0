"""A container's health check (Docker's HEALTHCHECK / --health-cmd): what to run and how often.

`test` is Docker's form: ["CMD", prog, args...] runs a program, ["CMD-SHELL", "text"] runs
/bin/sh -c text, ["NONE"] turns off a check the image declares. Times are in seconds. The host
agent runs the check inside the running container (platform/agent/health.py); the runtime
only carries it in the spec.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from runtime.errors import InvalidSpec
from runtime.spec_fields import check_keys

TEST_KINDS = ("CMD", "CMD-SHELL", "NONE")
MIN_INTERVAL = 1.0
MAX_SECONDS = 24 * 3600.0
MAX_RETRIES = 100
MAX_TEST_BYTES = 4096


def _seconds(value: Any, where: str, minimum: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidSpec(f"healthcheck {where} must be a number of seconds")
    if not minimum <= value <= MAX_SECONDS:
        raise InvalidSpec(f"healthcheck {where} must be between {minimum:g} and {MAX_SECONDS:g} s")
    return float(value)


@dataclass
class HealthCheck:
    """How the host decides a running container is healthy: a command, its cadence, retries."""

    test: list[str] = field(default_factory=list)
    interval: float = 30.0
    timeout: float = 30.0
    retries: int = 3
    start_period: float = 0.0

    @classmethod
    def from_dict(cls, data: Any) -> HealthCheck | None:
        if data is None:
            return None
        data = check_keys(cls, data, "healthcheck")
        retries = data.get("retries", 3)
        if isinstance(retries, bool) or not isinstance(retries, int):
            raise InvalidSpec("healthcheck retries must be an integer")
        check = cls(
            test=data.get("test"),
            interval=_seconds(data.get("interval", 30.0), "interval", MIN_INTERVAL),
            timeout=_seconds(data.get("timeout", 30.0), "timeout", MIN_INTERVAL),
            retries=retries,
            start_period=_seconds(data.get("start_period", 0.0), "start_period", 0.0),
        )
        check.validate()
        return check

    def validate(self) -> None:
        test = self.test
        if not isinstance(test, list) or not test or not all(isinstance(t, str) for t in test):
            raise InvalidSpec('healthcheck test must be a list such as ["CMD-SHELL", "command"]')
        if test[0] not in TEST_KINDS:
            raise InvalidSpec(f"healthcheck test must start with one of {', '.join(TEST_KINDS)}")
        if test[0] == "NONE" and len(test) != 1:
            raise InvalidSpec('healthcheck test ["NONE"] takes nothing else')
        if test[0] == "CMD-SHELL" and (len(test) != 2 or not test[1].strip()):
            raise InvalidSpec('healthcheck test ["CMD-SHELL", "command"] needs one command')
        if test[0] == "CMD" and len(test) < 2:
            raise InvalidSpec('healthcheck test ["CMD", program, ...] needs a program')
        if sum(len(t.encode()) for t in test) > MAX_TEST_BYTES or any("\0" in t for t in test):
            raise InvalidSpec(f"healthcheck test must be under {MAX_TEST_BYTES} bytes, no NUL")
        if not 1 <= self.retries <= MAX_RETRIES:
            raise InvalidSpec(f"healthcheck retries must be between 1 and {MAX_RETRIES}")

    @property
    def argv(self) -> list[str] | None:
        """What runs in the container, or None when the check is turned off."""
        if self.test[0] == "NONE":
            return None
        if self.test[0] == "CMD-SHELL":
            return ["/bin/sh", "-c", self.test[1]]
        return self.test[1:]
