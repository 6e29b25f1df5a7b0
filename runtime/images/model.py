"""The Image record the store hands out, and its `docker image inspect` form."""

from dataclasses import dataclass, field


@dataclass
class Image:
    """One image in the store.

    `id` is "sha256:<config digest>" as in Docker; `config` is the whole OCI image config
    document (its "config" key holds Env, Cmd, Entrypoint, WorkingDir, User, ExposedPorts,
    Labels); `layers` are the diff ids, lowest first; `size` is the unpacked content size.
    """

    id: str
    digest: str  # manifest digest
    config: dict
    manifest: dict
    layers: list[str]
    size: int
    repo_tags: list[str] = field(default_factory=list)

    @property
    def short_id(self) -> str:
        """The 12 hex digits Docker shows."""
        return self.id.split(":", 1)[1][:12]

    @property
    def created(self) -> str:
        """Creation time from the config (RFC 3339), or "" when the image has none."""
        return self.config.get("created") or ""

    @property
    def container_config(self) -> dict:
        """The config's "config" object: Env, Cmd, Entrypoint, WorkingDir, User, ..."""
        return self.config.get("config") or {}

    def inspect(self) -> dict:
        """A dict shaped like one element of `docker image inspect`."""
        inner = self.container_config
        return {
            "Id": self.id,
            "RepoTags": list(self.repo_tags),
            "RepoDigests": [],
            "Created": self.created,
            "Size": self.size,
            "Architecture": self.config.get("architecture", ""),
            "Os": self.config.get("os", ""),
            "Author": self.config.get("author", ""),
            "Config": {
                "Env": inner.get("Env"),
                "Cmd": inner.get("Cmd"),
                "Entrypoint": inner.get("Entrypoint"),
                "WorkingDir": inner.get("WorkingDir", ""),
                "User": inner.get("User", ""),
                "ExposedPorts": inner.get("ExposedPorts"),
                "Labels": inner.get("Labels"),
                "Volumes": inner.get("Volumes"),
                "StopSignal": inner.get("StopSignal"),
            },
            "RootFS": {"Type": "layers", "Layers": list(self.layers)},
            "Descriptor": {"digest": self.digest},
        }
