"""Where one container's files live: persistent under config.root, runtime under config.run_root."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from runtime.config import RuntimeConfig


@dataclass(frozen=True)
class ContainerPaths:
    """All paths of one container, derived from the config and its id."""

    config: RuntimeConfig
    cid: str

    @property
    def dir(self) -> Path:
        """Persistent directory (config, state, log, upper layer)."""
        return self.config.containers_dir / self.cid

    @property
    def run_dir(self) -> Path:
        """Runtime directory (pids, FIFO, socket, /etc files); gone after a reboot."""
        return self.config.run_containers_dir / self.cid

    @property
    def config_file(self) -> Path:
        """The fixed record."""
        return self.dir / "config.json"

    @property
    def state_file(self) -> Path:
        """The changing state the API writes."""
        return self.dir / "state.json"

    @property
    def exit_file(self) -> Path:
        """The exit record the shim writes."""
        return self.dir / "exit.json"

    @property
    def log_file(self) -> Path:
        """JSON-lines log of stdout and stderr."""
        return self.dir / f"{self.cid}-json.log"

    @property
    def lock_file(self) -> Path:
        """Serializes changes across processes."""
        return self.dir / "lock"

    @property
    def upper(self) -> Path:
        """The overlay's upper (writable) layer."""
        return self.dir / "upper"

    @property
    def work(self) -> Path:
        """The overlay's work directory."""
        return self.dir / "work"

    @property
    def merged(self) -> Path:
        """Mount point of the root filesystem (in the container's namespace only)."""
        return self.dir / "merged"

    @property
    def shim_file(self) -> Path:
        """Pids of shim and init, with start times."""
        return self.run_dir / "shim.json"

    @property
    def fifo(self) -> Path:
        """exec FIFO: exists while the container waits for start."""
        return self.run_dir / "exec.fifo"

    @property
    def attach_socket(self) -> Path:
        """The shim's attach socket."""
        return self.run_dir / "attach.sock"

    @property
    def winsize_socket(self) -> Path:
        """The shim's datagram socket for window sizes (TTY containers)."""
        return self.run_dir / "winsize.sock"

    @property
    def stop_flag(self) -> Path:
        """Present when the user stopped it: no restart."""
        return self.run_dir / "stop-requested"

    @property
    def caller_cleans(self) -> Path:
        """Present when an API call (stop, delete) releases the network itself: the shim's
        post-exit hook then has nothing to do."""
        return self.run_dir / "caller-cleans"

    @property
    def network_file(self) -> Path:
        """Result of the network step."""
        return self.run_dir / "network.json"

    def etc_file(self, name: str) -> Path:
        """hosts, resolv.conf or hostname: bind-mounted into the container's /etc."""
        return self.run_dir / name
