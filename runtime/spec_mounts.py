"""The container spec's mounts: named volumes, tmpfs and binds of host paths."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from runtime.errors import InvalidSpec
from runtime.spec_fields import NAME_RE, check_container_path, check_keys, str_list

MOUNT_TYPES = ("volume", "bind", "tmpfs")


@dataclass
class Mount:
    """A named volume, a tmpfs or a bind of a host path, at `target` inside the container."""

    type: str
    target: str
    source: str = ""
    read_only: bool = False
    options: list[str] = field(default_factory=list)

    @classmethod
    def from_dict(cls, data: Any) -> Mount:
        data = check_keys(cls, data, "mount")
        mount = cls(
            type=data.get("type", ""),
            target=data.get("target", ""),
            source=data.get("source", "") or "",
            read_only=bool(data.get("read_only", False)),
            options=str_list(data.get("options"), "mount options"),
        )
        mount.validate()
        return mount

    def validate(self) -> None:
        if self.type not in MOUNT_TYPES:
            raise InvalidSpec(
                f"mount type must be one of {', '.join(MOUNT_TYPES)}, got {self.type!r}"
            )
        check_container_path(self.target, "mount target")
        if self.target == "/":
            raise InvalidSpec("a mount cannot replace the container's root")
        if self.type == "bind":
            check_container_path(self.source, "bind source")
        elif self.type == "volume":
            if not NAME_RE.match(self.source or ""):
                raise InvalidSpec(f"invalid volume name {self.source!r}")
        elif self.source:
            raise InvalidSpec("a tmpfs mount takes no source")
        for opt in self.options:
            if self.type != "tmpfs" or not re.fullmatch(
                r"(size=\d+[kmg]?|mode=[0-7]{3,4}|noexec|nosuid|nodev)", opt
            ):
                raise InvalidSpec(f"unsupported {self.type} mount option {opt!r}")
