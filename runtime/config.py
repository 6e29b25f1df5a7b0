"""Where the runtime keeps its state and how it names host resources."""

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

_PREFIX_RE = re.compile(r"^[a-z][a-z0-9]{1,7}$")


@dataclass(frozen=True)
class RuntimeConfig:
    """Roots and names that keep one Berth (or one test run) apart from another.

    `prefix` names every host resource (cgroup parent, bridge, veth, nft table), so it is
    short: Linux interface names hold 15 characters.
    """

    root: Path = Path("/var/lib/berth")
    run_root: Path = Path("/run/berth")
    prefix: str = "berth"
    cgroup_root: Path = Path("/sys/fs/cgroup")
    default_pids_limit: int = 2048
    extra: dict = field(default_factory=dict)

    def __post_init__(self):
        if not _PREFIX_RE.match(self.prefix):
            raise ValueError(
                f"prefix {self.prefix!r} must be 2-8 lower-case letters or digits, starting with a letter"
            )

    @property
    def cgroup_parent(self) -> str:
        return self.prefix

    @property
    def containers_dir(self) -> Path:
        return self.root / "containers"

    @property
    def images_dir(self) -> Path:
        return self.root / "images"

    @property
    def volumes_dir(self) -> Path:
        return self.root / "volumes"

    @property
    def networks_dir(self) -> Path:
        return self.root / "networks"

    @property
    def run_containers_dir(self) -> Path:
        return self.run_root / "containers"

    def to_dict(self) -> dict:
        """The JSON form handed to the shim, its hooks and the fork server."""
        return {
            "root": str(self.root),
            "run_root": str(self.run_root),
            "prefix": self.prefix,
            "cgroup_root": str(self.cgroup_root),
            "default_pids_limit": self.default_pids_limit,
            "extra": self.extra,
        }

    @classmethod
    def from_dict(cls, cfg: dict) -> "RuntimeConfig":
        """The config back from its JSON form (to_dict)."""
        return cls(
            root=Path(cfg["root"]),
            run_root=Path(cfg["run_root"]),
            prefix=cfg["prefix"],
            cgroup_root=Path(cfg["cgroup_root"]),
            default_pids_limit=cfg["default_pids_limit"],
            extra=cfg.get("extra") or {},
        )

    @classmethod
    def from_env(cls, environ=os.environ) -> "RuntimeConfig":
        """Build the config from BERTH_ROOT, BERTH_RUN_ROOT, BERTH_PREFIX, BERTH_CGROUP_ROOT."""
        kwargs = {}
        if environ.get("BERTH_ROOT"):
            kwargs["root"] = Path(environ["BERTH_ROOT"])
        if environ.get("BERTH_RUN_ROOT"):
            kwargs["run_root"] = Path(environ["BERTH_RUN_ROOT"])
        if environ.get("BERTH_PREFIX"):
            kwargs["prefix"] = environ["BERTH_PREFIX"]
        if environ.get("BERTH_CGROUP_ROOT"):
            kwargs["cgroup_root"] = Path(environ["BERTH_CGROUP_ROOT"])
        if environ.get("BERTH_DEFAULT_PIDS_LIMIT"):
            kwargs["default_pids_limit"] = int(environ["BERTH_DEFAULT_PIDS_LIMIT"])
        return cls(**kwargs)
