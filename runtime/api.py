"""The runtime's public API: the verbs the host agent and the CLI call (see docs/contracts.md).

`Runtime` is one class; its verbs live by concern in runtime/verbs/ (creating, stopping,
removal, observing, interacting) and are mixed in here. This module holds what they share:
the collaborators, the observation of one container, and the checkpoint delegates.
"""

from __future__ import annotations

from pathlib import Path

from runtime.config import RuntimeConfig
from runtime.container import status as sm
from runtime.container.store import ContainerStore
from runtime.errors import BerthError, InvalidSpec, InvalidState, NotFound
from runtime.spec import ContainerSpec
from runtime.verbs.creating import CreateVerbs
from runtime.verbs.interacting import InteractVerbs
from runtime.verbs.networking import NetworkVerbs
from runtime.verbs.observing import ObserveVerbs
from runtime.verbs.removal import RemoveVerbs
from runtime.verbs.stopping import StopVerbs


class Runtime(CreateVerbs, StopVerbs, RemoveVerbs, ObserveVerbs, InteractVerbs, NetworkVerbs):
    """Create, run and manage containers on this host; every verb is idempotent by id or name."""

    def __init__(
        self, config: RuntimeConfig | None = None, *, images=None, networks=None, cgroups=None
    ):
        self.config = config or RuntimeConfig.from_env()
        self.store = ContainerStore(self.config)
        self._images, self._networks, self._cgroups = images, networks, cgroups

    # -- collaborators, loaded on first use (importing pyroute2 costs time) -------------
    @property
    def images(self):
        """The image store (runtime.images.ImageStore)."""
        if self._images is None:
            from runtime.images import ImageStore

            self._images = ImageStore(self.config)
        return self._images

    @property
    def networks(self):
        """The network manager (runtime.network.NetworkManager)."""
        if self._networks is None:
            from runtime.network import NetworkManager

            self._networks = NetworkManager(self.config)
        return self._networks

    @property
    def cgroups(self):
        """The cgroup driver for this host's layout."""
        if self._cgroups is None:
            from runtime.cgroups import driver_for

            self._cgroups = driver_for(self.config)
        return self._cgroups

    # -- helpers ------------------------------------------------------------------------
    @staticmethod
    def spec_of(rec: dict) -> ContainerSpec:
        """The record's spec as a typed ContainerSpec."""
        return ContainerSpec.from_dict(rec["spec"])

    def make_cgroups(self, rec: dict, spec: ContainerSpec | None = None) -> None:
        """The container's cgroups with every limit of its record written."""
        spec = spec or self.spec_of(rec)
        self.cgroups.create(
            rec["id"],
            spec.limits,
            self.config.default_pids_limit,
            devices=rec["device_rules"],
            privileged=spec.privileged,
        )

    def _frozen(self, cid: str):
        def check() -> bool:
            """Whether the container's cgroup is frozen (False when unknown)."""
            try:
                return self.cgroups.is_frozen(cid)
            except (OSError, BerthError):
                return False

        return check

    def _observe(self, cid: str) -> tuple[dict, dict]:
        rec = self.store.read_record(cid)
        if self.store.abandoned(rec):
            raise NotFound(f"no such container: {rec['name']} (its create never finished)")
        obs = sm.observe(self.store.paths(cid), self._frozen(cid))
        if obs["status"] == sm.STOPPED and not self.store.read_state(cid).get("started_at"):
            obs["status"] = sm.CREATED  # created, never started, no process waiting
        return rec, obs

    def running_pid(self, ref: str) -> int:
        """Host pid of a running container's init (for joining its namespaces)."""
        cid = self.store.resolve(ref)
        rec, obs = self._observe(cid)
        if obs["status"] not in (sm.RUNNING, sm.PAUSED) or not obs["pid"]:
            raise InvalidState(f"cannot join container {rec['name']}: it is {obs['status']}")
        return obs["pid"]

    # -- checkpoint / restore (CRIU; see runtime/container/checkpoint_verbs.py) --------------
    def checkpoint(
        self, ref: str, name: str, leave_running=False, export=None, tcp_established=False
    ) -> dict:
        """Dump a running container into checkpoint `name` (export: into an archive file)."""
        from runtime.container import checkpoint_verbs

        return checkpoint_verbs.checkpoint(self, ref, name, leave_running, export, tcp_established)

    def checkpoints(self, ref: str) -> list[dict]:
        """The container's checkpoints: [{"name", "created"}]."""
        from runtime.container import checkpoint_verbs

        return checkpoint_verbs.listing(self, ref)

    def checkpoint_remove(self, ref: str, name: str) -> None:
        """Delete one checkpoint."""
        from runtime.container import checkpoint_verbs

        checkpoint_verbs.remove(self, ref, name)

    def restore(self, import_file, name: str | None = None, labels=None) -> dict:
        """Create a container from an exported checkpoint archive, running where it was."""
        from runtime.container import checkpoint_verbs

        return checkpoint_verbs.import_(self, import_file, name, labels)

    def volume_path(self, name: str) -> Path:
        """Host directory of a named volume's data."""
        if not name or "/" in name:
            raise InvalidSpec(f"invalid volume name {name!r}")
        return self.config.volumes_dir / name / "_data"
