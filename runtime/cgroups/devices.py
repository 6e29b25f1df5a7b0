"""Device allow-list rules: Docker's default set and the parsing of extra rules."""

from __future__ import annotations

import os
import re
import stat
from dataclasses import dataclass

from runtime.errors import InvalidSpec

_RULE_RE = re.compile(r"^([abc]) (\*|\d+):(\*|\d+) ([rwm]{1,3})$")


@dataclass(frozen=True)
class DeviceRule:
    """Allow `access` (r, w, m) on devices of `type` (c, b, or a for all); None is a wildcard."""

    type: str
    major: int | None
    minor: int | None
    access: str = "rwm"

    def __post_init__(self):
        if self.type not in ("a", "b", "c"):
            raise InvalidSpec(f"device type must be a, b or c, got {self.type!r}")
        if (
            not self.access
            or set(self.access) - set("rwm")
            or len(set(self.access)) != len(self.access)
        ):
            raise InvalidSpec(
                f"device access must be a combination of r, w and m, got {self.access!r}"
            )
        for number in (self.major, self.minor):
            if number is not None and (
                isinstance(number, bool) or not isinstance(number, int) or number < 0
            ):
                raise InvalidSpec(f"device numbers must be non-negative integers, got {number!r}")

    def __str__(self) -> str:
        """The cgroup v1 devices.allow form, e.g. 'c 1:3 rwm'."""
        major = "*" if self.major is None else self.major
        minor = "*" if self.minor is None else self.minor
        return f"{self.type} {major}:{minor} {self.access}"

    @classmethod
    def parse(cls, text: str) -> DeviceRule:
        """Parse 'c 1:3 rwm', 'b *:* m' or 'a'."""
        if isinstance(text, str) and text.strip() == "a":
            return cls("a", None, None, "rwm")
        match = _RULE_RE.match(text.strip()) if isinstance(text, str) else None
        if not match:
            raise InvalidSpec(f"invalid device rule {text!r} (use e.g. 'c 1:3 rwm')")
        kind, major, minor, access = match.groups()
        return cls(
            kind,
            None if major == "*" else int(major),
            None if minor == "*" else int(minor),
            access,
        )

    @classmethod
    def from_path(cls, path: str, access: str = "rwm") -> DeviceRule:
        """The rule for one host device node (what `--device /dev/x:...:rw` allows)."""
        try:
            st = os.stat(path)
        except OSError as err:
            raise InvalidSpec(f"device {path}: {err.strerror}") from None
        if stat.S_ISCHR(st.st_mode):
            kind = "c"
        elif stat.S_ISBLK(st.st_mode):
            kind = "b"
        else:
            raise InvalidSpec(f"{path} is not a device node")
        return cls(kind, os.major(st.st_rdev), os.minor(st.st_rdev), access)


# Docker's default device cgroup (moby daemon/pkg/oci/defaults.go): mknod of anything, and
# use of the standard /dev nodes only.
DEFAULT_DEVICE_RULES: tuple[DeviceRule, ...] = (
    DeviceRule("c", None, None, "m"),
    DeviceRule("b", None, None, "m"),
    DeviceRule("c", 1, 3, "rwm"),  # null
    DeviceRule("c", 1, 5, "rwm"),  # zero
    DeviceRule("c", 1, 7, "rwm"),  # full
    DeviceRule("c", 1, 8, "rwm"),  # random
    DeviceRule("c", 1, 9, "rwm"),  # urandom
    DeviceRule("c", 5, 0, "rwm"),  # tty
    DeviceRule("c", 5, 1, "rwm"),  # console
    DeviceRule("c", 5, 2, "rwm"),  # ptmx
    DeviceRule("c", 136, None, "rwm"),  # pts
)


def allowed_rules(extra=(), privileged: bool = False) -> list[DeviceRule]:
    """The full allow-list for a container: ['a'] when privileged, else defaults plus extras."""
    if privileged:
        return [DeviceRule("a", None, None, "rwm")]
    rules = list(DEFAULT_DEVICE_RULES)
    for item in extra or ():
        rule = item if isinstance(item, DeviceRule) else DeviceRule.parse(item)
        if rule not in rules:
            rules.append(rule)
    return rules
