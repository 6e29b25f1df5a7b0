"""The runtime's public API: the verbs the host agent and the CLI call (see docs/contracts.md)."""

from __future__ import annotations

import contextlib
import os
import select
import shutil
import signal
import time
from pathlib import Path

from runtime.config import RuntimeConfig
from runtime.container import grace as grace_mod
from runtime.container import inspect
from runtime.container import status as sm
from runtime.container.checkpoint import pause_at
from runtime.container.fsutil import proc_start_time, read_json, write_json
from runtime.container.store import ContainerStore
from runtime.errors import BerthError, Conflict, InvalidSpec, InvalidState, KernelError, NotFound
from runtime.lazy import LazyModule
from runtime.signals import parse_signal
from runtime.spec import ContainerSpec

# Loaded when a verb first needs it (ctypes, the shim binary): `ps` and `rm` never do.
launch = LazyModule("runtime.container.launch")
plan = LazyModule("runtime.container.plan")


class Runtime:
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

    # -- create / start / run -------------------------------------------------------------
    def _prepare(self, spec) -> dict:
        spec = spec if isinstance(spec, ContainerSpec) else ContainerSpec.from_dict(spec)
        spec.validate()
        plan.check_supported(spec)
        plan.mounts(spec, self.config)  # refuses missing bind sources and forbidden targets early
        rules = plan.device_rules(spec)
        image = self.images.resolve(spec.image)
        cid = self.store.new_id()
        rec = {
            "id": cid,
            "name": spec.name or f"{self.config.prefix}_{cid[:10]}",
            "created": self.store.now(),
            "image": spec.image,
            "image_id": image.id,
            "image_config": image.config,
            "lower": [str(p) for p in self.images.layer_dirs(image)],
            "hostname": spec.hostname or cid[:12],
            "spec": spec.to_dict(),
            "device_rules": rules,
        }
        mode = spec.network.mode
        if mode.startswith("container:"):
            rec["network_container"] = self.store.resolve(mode.partition(":")[2])
            self.running_pid(rec["network_container"])
        return rec

    def _create(self, spec, start_now: bool, auto_remove: bool = False) -> dict:
        rec = self._prepare(spec)
        cid, paths = rec["id"], self.store.paths(rec["id"])
        if auto_remove or rec["spec"].get("auto_remove"):
            if rec["spec"]["restart"]["name"] != "no":
                raise InvalidSpec("conflicting options: a restart policy and auto-remove (--rm)")
            rec["auto_remove"] = True
        # The record names its creator until the create completes: if this process dies
        # half-way, the next create of the name (or reconcile) sees it and clears the rest.
        me = os.getpid()
        rec["creating"] = {"pid": me, "start": proc_start_time(me)}
        self.store.publish_record(rec)
        pause_at("record")
        try:
            self._claim_name(rec["name"], cid)
            pause_at("name")
            for d in (paths.upper, paths.work, paths.merged):
                d.mkdir(parents=True, exist_ok=True, mode=0o755)
            self.store.write_state(cid, {"started_at": None})
            spec_obj = self.spec_of(rec)
            self.cgroups.create(
                cid,
                spec_obj.limits,
                self.config.default_pids_limit,
                devices=rec["device_rules"],
                privileged=spec_obj.privileged,
            )
            pause_at("cgroup")
            with self.store.locked(cid):
                launch.launch(self, rec, start_now)
                pause_at("launch")
                if start_now:
                    self.store.write_state(cid, {"started_at": self.store.now()})
                del rec["creating"]
                self.store.write_record(rec)
        except BaseException:
            self._teardown(cid, rec["name"], network=True)
            raise
        return self.state(cid)

    def _claim_name(self, name: str, cid: str) -> None:
        """Reserve `name`, first clearing a half-made container of a dead creator that holds it."""
        try:
            self.store.reserve_name(name, cid)
            return
        except Conflict:
            owner = self.store.name_owner(name)
            if not owner or not self._clear_owner(owner, name):
                raise
        self.store.reserve_name(name, cid)  # a racing create may have won it: Conflict then

    def _clear_owner(self, owner: str, name: str) -> bool:
        """Clear the holder of `name` if it is a half-made container; True if the name is free."""
        if "/" in owner or owner in ("", ".", ".."):
            return False
        if not self.store.paths(owner).dir.exists():
            self.store.release_name(name, owner)  # a create or delete killed half-way
            return True
        rec = read_json(self.store.paths(owner).config_file)
        if rec is not None and not self.store.abandoned(rec):
            return False  # a live create (which may hold the lock) or a real container
        try:
            with self.store.locked(owner):
                return self._clear_if_abandoned(owner, name)
        except NotFound:  # removed meanwhile
            self.store.release_name(name, owner)
            return True

    def _clear_if_abandoned(self, cid: str, name: str | None = None) -> bool:
        """Tear down `cid` if its create died half-way (or it has no record); True if cleared."""
        if "/" in cid or cid in ("", ".", ".."):
            return False
        rec = read_json(self.store.paths(cid).config_file)
        if rec is not None and not self.store.abandoned(rec):
            return False
        self._teardown(cid, name or (rec or {}).get("name"), network=True)
        if name:
            self.store.release_name(name, cid)
        return True

    def create(self, spec) -> dict:
        """Create a container; its process waits before exec until start()."""
        return self._create(spec, start_now=False)

    def run(self, spec, auto_remove: bool = False) -> dict:
        """Create and start in one step; with auto_remove the container is deleted when it exits."""
        return self._create(spec, start_now=True, auto_remove=auto_remove)

    def start(self, ref: str, checkpoint: str | None = None, restart_count: int = 0) -> dict:
        """Start a created or stopped container (from `checkpoint`: restore it); a running one
        is left alone. `restart_count`: restarts so far when a restart policy starts it (its
        shim goes on counting from there), 0 for a user's start."""
        if checkpoint is not None:
            from runtime.container import checkpoint_verbs

            return checkpoint_verbs.start_from(self, ref, checkpoint)
        cid = self.store.resolve(ref)
        with self.store.locked(cid):
            rec, obs = self._observe(cid)
            sm.check("start", rec["name"], obs["status"])
            if obs["status"] == sm.RUNNING:
                return self.state(cid)
            paths = self.store.paths(cid)
            if obs["status"] == sm.CREATED and obs["process"]:
                self._release(paths, obs["pid"])
            else:
                paths.exit_file.unlink(missing_ok=True)
                rec["restart_count"] = restart_count
                launch.launch(self, rec, start_now=True)
            state = self.store.read_state(cid)
            state.update(
                started_at=self.store.now(), user_stopped=False, restart_count=restart_count
            )
            self.store.write_state(cid, state)
        return self.state(cid)

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

    def _release(self, paths, pid: int) -> None:
        # Opening the FIFO's read end unblocks the child's open for writing; its byte says
        # it has passed the point of no return and is about to exec.
        fd = os.open(paths.fifo, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        try:
            deadline = time.monotonic() + 10
            got = b""
            while time.monotonic() < deadline:
                if select.select([fd], [], [], 0.05)[0]:
                    data = os.read(fd, 1)
                    if data:
                        got += data
                        paths.fifo.unlink(missing_ok=True)
                    elif got:
                        return  # EOF after the byte: the child has exec'd (or died trying)
                if not got and not os.path.exists(f"/proc/{pid}"):
                    break
            if not got:
                raise KernelError("the container's process exited before it could start")
        finally:
            os.close(fd)

    def rename(self, ref: str, new_name: str) -> dict:
        """Give the container `new_name` (a no-op if it has it already); Conflict if taken."""
        self.store.check_name(new_name)
        cid = self.store.resolve(ref)
        with self.store.locked(cid):
            rec, _ = self._observe(cid)
            old = rec["name"]
            if old != new_name:
                # New name first, then the record, then the old name: killed in between, the
                # container keeps a valid name and reconcile() frees the one the record lacks.
                self._claim_name(new_name, cid)
                rec["name"] = new_name
                self.store.write_record(rec)
                self.store.release_name(old, cid)
        return self.state(cid)

    # -- state ---------------------------------------------------------------------------
    def state(self, ref: str) -> dict:
        """The container's state dict (see docs/contracts.md)."""
        cid = self.store.resolve(ref)
        rec, obs = self._observe(cid)
        return self._compose(cid, rec, obs, self.store.read_state(cid))

    def _compose(self, cid: str, rec: dict, obs: dict, state: dict) -> dict:
        """The state dict from a record (full or the index's summary), observation and state."""
        paths = self.store.paths(cid)
        exit_info = read_json(paths.exit_file, {}) or {}
        stopped = obs["status"] in (sm.STOPPED, sm.CREATED, sm.RESTARTING)
        return {
            "id": cid,
            "name": rec["name"],
            "status": obs["status"],
            "pid": obs["pid"],
            "exit_code": exit_info.get("exit_code") if stopped else None,
            "oom_killed": bool(exit_info) and stopped and self._oom_killed(cid),
            "created": rec["created"],
            "started_at": state.get("started_at"),
            "finished_at": exit_info.get("finished_at"),
            "restart_count": state.get("restart_count", 0),
            "image": rec["image"],
            "image_id": rec["image_id"],
            "hostname": rec["hostname"],
            "spec": rec["spec"],
            # What runs: the spec's entrypoint and command, else the image's (Docker's rule).
            "command": rec["command"]
            if "command" in rec  # the index's summary has it ready
            else plan.command_line(self.spec_of(rec), rec.get("image_config") or {}),
            "network": read_json(paths.network_file, {}) or {},
            "log_path": str(paths.log_file),
        }

    def _oom_killed(self, cid: str) -> bool:
        try:
            return bool(self.cgroups.oom_killed(cid))
        except (OSError, BerthError):
            return False

    def list(self) -> list[dict]:
        """Every container of this runtime's root, oldest first.

        Records and states come from the store's index (one file), not from each container's
        files; only what changes without the runtime (processes, exits) is observed per
        container.
        """
        result = []
        for cid, rec, state in self.store.entries():
            if not rec or self.store.abandoned(rec):
                continue
            obs = sm.observe(self.store.paths(cid), self._frozen(cid))
            if obs["status"] == sm.STOPPED and not state.get("started_at"):
                obs["status"] = sm.CREATED
            result.append(self._compose(cid, rec, obs, state))
        return sorted(result, key=lambda s: s["created"])

    # -- signals, stop, pause ------------------------------------------------------------
    def kill(self, ref: str, sig="KILL") -> None:
        """Send a signal to the container's init (Docker: only while it runs)."""
        number = parse_signal(sig)
        cid = self.store.resolve(ref)
        with self.store.locked(cid):
            rec, obs = self._observe(cid)
            sm.check("kill", rec["name"], obs["status"])
            if number in (signal.SIGKILL, signal.SIGTERM, signal.SIGINT):
                # A deliberate kill is a user stop: no restart, as in Docker.
                self.store.paths(cid).stop_flag.touch()
                # Kept in the state too (the flag goes with a reboot): unless-stopped stays down.
                state = self.store.read_state(cid)
                if not state.get("user_stopped"):
                    self.store.write_state(cid, dict(state, user_stopped=True))
            if obs["pid"]:  # never 0: os.kill(0, ...) would signal our own process group
                with contextlib.suppress(ProcessLookupError):
                    os.kill(obs["pid"], number)
        if number == signal.SIGKILL:
            self._wait_stopped(cid, 10)

    def stop(self, ref: str, timeout: int | None = None) -> dict:
        """Stop signal, up to `timeout` seconds of grace, then SIGKILL; a no-op if stopped."""
        return self._stop(ref, timeout, keep=False)

    def signal_stop(self, ref: str, timeout: int | None = None, *, keep: bool = False) -> dict:
        """Send the stop signal and return at once; the shim SIGKILLs after `timeout` seconds.

        A paused container, or a grace of 0, is stopped here and now (that takes no waiting).
        Call stop() (or restart(), with `keep`) once it has exited, to release its network.
        """
        return self._stop(ref, timeout, keep, wait=False)

    def _stop(self, ref: str, timeout: int | None, keep: bool, wait: bool = True) -> dict:
        cid = self.store.resolve(ref)
        with self.store.locked(cid):
            rec, obs = self._observe(cid)
            if obs["process"]:
                spec = self.spec_of(rec)
                grace = spec.stop_timeout if timeout is None else timeout
                paths = self.store.paths(cid)
                paths.stop_flag.touch()
                if keep or not rec.get("auto_remove"):  # --rm: the post-exit hook removes it
                    paths.caller_cleans.touch()
                state = self.store.read_state(cid)
                state["user_stopped"] = True
                self.store.write_state(cid, state)
                if obs["status"] == sm.RUNNING and obs["pid"]:
                    if not wait and grace > 0 and obs["shim_pid"]:
                        # The shim sits out the grace period (runtime/container/grace.py).
                        grace_mod.arm(
                            paths,
                            pid=obs["pid"],
                            shim_pid=obs["shim_pid"],
                            stop_signal=parse_signal(spec.stop_signal),
                            grace=grace,
                        )
                        return self.state(cid)
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(obs["pid"], parse_signal(spec.stop_signal))
                    self._wait_stopped(cid, grace)
                self._kill_and_wait(cid, obs)
            self._detach_network(cid)
            # Read under the lock: a --rm container's post-exit hook removes it right after.
            return self.state(cid)

    def _kill_and_wait(self, cid: str, obs: dict) -> None:
        with contextlib.suppress(OSError, BerthError):
            self.cgroups.kill_all(cid, signal.SIGKILL)
        with contextlib.suppress(OSError, BerthError):
            self.cgroups.thaw(cid)  # frozen tasks do not die until thawed
        launch.wait_gone(obs.get("pid"), 10)
        launch.wait_gone(obs.get("shim_pid"), 10)

    def _wait_stopped(self, cid: str, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while True:
            obs = sm.observe(self.store.paths(cid), lambda: False)
            if not obs["pid"]:
                launch.wait_gone(obs["shim_pid"], max(0.0, deadline - time.monotonic()))
                return True
            if time.monotonic() >= deadline:
                return False
            launch.wait_gone(obs["pid"], min(0.1, max(0.0, deadline - time.monotonic())))

    def _detach_network(self, cid: str) -> None:
        if self.store.paths(cid).network_file.exists() or self._networks is not None:
            with contextlib.suppress(OSError, BerthError):
                self.networks.detach(cid)
            self.store.paths(cid).network_file.unlink(missing_ok=True)

    def restart(self, ref: str, timeout: int | None = None) -> dict:
        """Stop (if running) and start again (a --rm container is kept for the start)."""
        self._stop(ref, timeout, keep=True)
        return self.start(ref)

    def pause(self, ref: str) -> None:
        """Freeze every process of the container (cgroup freezer)."""
        cid = self.store.resolve(ref)
        with self.store.locked(cid):
            rec, obs = self._observe(cid)
            sm.check("pause", rec["name"], obs["status"])
            self.cgroups.freeze(cid)

    def unpause(self, ref: str) -> None:
        """Thaw a paused container."""
        cid = self.store.resolve(ref)
        with self.store.locked(cid):
            rec, obs = self._observe(cid)
            sm.check("unpause", rec["name"], obs["status"])
            self.cgroups.thaw(cid)

    # -- delete / reconcile --------------------------------------------------------------
    def delete(self, ref: str, force: bool = False) -> None:
        """Remove the container: cgroup, network, upper layer and state (force: kill first)."""
        cid = self.store.resolve(ref)
        with self.store.locked(cid):
            if self._clear_if_abandoned(cid):
                return
            rec, obs = self._observe(cid)
            if obs["process"]:
                if not force:
                    raise Conflict(
                        f"cannot remove container {rec['name']}: it is {obs['status']}; "
                        "stop it first or force the removal"
                    )
                self.store.paths(cid).stop_flag.touch()
                self.store.paths(cid).caller_cleans.touch()
                self._kill_and_wait(cid, obs)
            self._teardown(cid, rec["name"])

    def _teardown(self, cid: str, name: str | None, network: bool = False) -> None:
        paths = self.store.paths(cid)
        with contextlib.suppress(OSError):
            paths.stop_flag.touch()
            paths.caller_cleans.touch()
        obs = sm.observe(paths, lambda: False)
        # A create killed before it recorded the shim: the shim is the parent of the init.
        shims = {obs["shim_pid"]} | self._parents_outside(cid)
        with contextlib.suppress(OSError, BerthError):
            self.cgroups.destroy(cid)
        for pid in shims:
            launch.wait_gone(pid, 10)
        if network and self._has_network(cid):
            with contextlib.suppress(OSError, BerthError):
                self.networks.detach(cid)
        self._detach_network(cid)
        self.store.remove(cid, name)

    def _parents_outside(self, cid: str) -> set[int]:
        """Parents of the cgroup's processes that are not in it (a shim nobody recorded)."""
        try:
            pids = set(self.cgroups.pids(cid))
        except (OSError, BerthError):
            return set()
        parents = set()
        for pid in pids:
            with contextlib.suppress(OSError, ValueError):
                with open(f"/proc/{pid}/stat", "rb") as f:
                    raw = f.read()
                ppid = int(raw[raw.rindex(b")") + 2 :].split()[1])
                if ppid not in pids and ppid > 1:
                    parents.add(ppid)
        return parents

    def _has_network(self, cid: str) -> bool:
        rec = read_json(self.store.paths(cid).config_file) or {}
        mode = ((rec.get("spec") or {}).get("network") or {}).get("mode", "none")
        return mode not in ("none", "host") and not mode.startswith("container:")

    def after_exit(self, ref: str) -> None:
        """Release what a container that exited on its own holds (the shim's post-exit hook).

        Its port maps and addresses go, as Docker's do; a container run with auto_remove is
        deleted. A container started again meanwhile is left alone.
        """
        try:
            cid = self.store.resolve(ref)
            with self.store.locked(cid):
                rec, obs = self._observe(cid)
                if obs["process"]:
                    return
                if rec.get("auto_remove"):
                    self._teardown(cid, rec["name"], network=True)
                elif self._has_network(cid):
                    self.networks.detach(cid)
                    self.store.paths(cid).network_file.unlink(missing_ok=True)
        except NotFound:
            return

    def reconcile(self) -> list[str]:
        """Mark containers whose shim is gone (reboot, kill) stopped and clean what they left."""
        gone = []
        for path in self.store.leftovers():
            shutil.rmtree(path, ignore_errors=True)
        self.store.entries(repair=True)  # rows a killed writer left dirty are rewritten
        for cid in self.store.ids():
            with contextlib.suppress(NotFound):
                if self._clear_if_abandoned(cid) or self._reconcile_one(cid):
                    gone.append(cid)
        self._release_orphan_names()
        return gone

    def _release_orphan_names(self) -> None:
        """Free names whose owner has no directory (a create or delete killed half-way)."""
        try:
            names = os.listdir(self.store.names_dir)
        except FileNotFoundError:
            return
        for name in names:
            owner = self.store.name_owner(name)
            if not owner or "/" in owner:
                continue
            if not self.store.paths(owner).dir.exists():
                self.store.release_name(name, owner)
                continue
            # A rename killed half-way: the record tells which of two names is the real one.
            with contextlib.suppress(NotFound), self.store.locked(owner):
                rec = read_json(self.store.paths(owner).config_file) or {}
                if rec.get("name") not in (None, name):
                    self.store.release_name(name, owner)

    def _reconcile_one(self, cid: str) -> bool:
        paths = self.store.paths(cid)
        with self.store.locked(cid):
            rec, obs = self._observe(cid)
            if obs["monitored"]:
                return False
            state = self.store.read_state(cid)
            exit_info = read_json(paths.exit_file)
            # The shim removes shim.json when it ends normally; a leftover one, a process
            # without a shim, or a start with no recorded exit (run_root wiped) is a ghost.
            unfinished = bool(state.get("started_at")) and (
                exit_info is None or exit_info.get("finished_at", "") < state["started_at"]
            )
            if not (obs["process"] or paths.shim_file.exists() or unfinished):
                if paths.network_file.exists():
                    self._detach_network(cid)  # exited on its own: release address and ports
                return False
            with contextlib.suppress(OSError, BerthError):
                self.cgroups.kill_all(cid, signal.SIGKILL)
            with contextlib.suppress(OSError, BerthError):
                self.cgroups.thaw(cid)
            launch.wait_gone(obs["pid"], 5)
            self._detach_network(cid)
            if unfinished or exit_info is None:
                write_json(
                    paths.exit_file,
                    {
                        "exit_code": 255,
                        "finished_at": self.store.now(),
                        "restart_count": (exit_info or {}).get("restart_count", 0),
                    },
                )
            if not state.get("started_at"):
                state["started_at"] = rec["created"]
                self.store.write_state(cid, state)
            paths.shim_file.unlink(missing_ok=True)
            paths.fifo.unlink(missing_ok=True)
        return True

    # -- observation ---------------------------------------------------------------------
    def wait(self, ref: str) -> int:
        """Block until the container is not running; return its exit code."""
        cid = self.store.resolve(ref)
        paths = self.store.paths(cid)
        before = read_json(paths.exit_file)
        while True:
            rec, obs = self._observe(cid)
            now = read_json(paths.exit_file)
            if obs["status"] == sm.STOPPED or (now is not None and now != before):
                return (now or {}).get("exit_code", 0)
            if obs["shim_pid"]:
                launch.wait_gone(obs["pid"] or obs["shim_pid"], 0.2)
            else:
                time.sleep(0.05)

    def stats(self, ref: str) -> dict:
        """Resource usage from the container's cgroup."""
        cid = self.store.resolve(ref)
        return inspect.stats(self, cid)

    def top(self, ref: str) -> dict:
        """The container's processes: {"titles": [...], "processes": [[...], ...]}."""
        cid = self.store.resolve(ref)
        rec, obs = self._observe(cid)
        if obs["status"] not in (sm.RUNNING, sm.PAUSED):
            raise InvalidState(
                f"cannot list processes of container {rec['name']}: it is {obs['status']}"
            )
        return inspect.top(self.cgroups.pids(cid))

    def logs(
        self, ref: str, follow: bool = False, tail=None, since=None, timestamps=False, stop=None
    ):
        """Iterator of (stream, iso_ts, bytes) from the container's log (following it until the
        container stops, or until `stop()` is true)."""
        from runtime.container import logs

        cid = self.store.resolve(ref)
        return logs.read_logs(self, cid, follow=follow, tail=tail, since=since, stop=stop)

    def exec(self, ref: str, argv, env=(), user=None, workdir=None, tty=False) -> tuple[int, bytes]:
        """Run `argv` inside the running container; return (exit code, combined output)."""
        from runtime.container import execute

        cid = self.store.resolve(ref)
        rec, obs = self._observe(cid)
        sm.check("exec", rec["name"], obs["status"])
        return execute.run(
            self, rec, obs["pid"], list(argv), env=list(env), user=user, workdir=workdir, tty=tty
        )

    def exec_uid(self, ref: str, user=None) -> int:
        """The uid an exec as `user` (None: the container's own user) runs as, read from the
        container's /etc/passwd without following links out of its root."""
        from runtime.container import safepath

        cid = self.store.resolve(ref)
        rec, obs = self._observe(cid)
        sm.check("exec", rec["name"], obs["status"])
        config = (rec.get("image_config") or {}).get("config") or {}
        name = str(user or self.spec_of(rec).user or config.get("User") or "0").partition(":")[0]
        if name.isdigit():
            return int(name)
        root = os.open(f"/proc/{obs['pid']}/root", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            found = safepath.open_in_root(root, "/etc/passwd")
            try:
                with open(f"/proc/self/fd/{found}", "rb") as f:
                    lines = f.read(1 << 20).decode(errors="replace").splitlines()
            finally:
                os.close(found)
        except (InvalidSpec, OSError):
            lines = []
        finally:
            os.close(root)
        for line in lines:
            fields = line.split(":")
            if len(fields) >= 3 and fields[0] == name and fields[2].isdigit():
                return int(fields[2])
        raise InvalidSpec(f"unable to find user {name}: no matching entries in passwd file")

    def exec_spawn(self, ref: str, argv, stdio, env=(), user=None, workdir=None, tty=False) -> int:
        """Start `argv` in the running container on the given stdio fds; return the helper's
        pid (reap it with os.waitpid). For interactive sessions: the CLI and the web terminal."""
        from runtime.container import execute

        cid = self.store.resolve(ref)
        rec, obs = self._observe(cid)
        sm.check("exec", rec["name"], obs["status"])
        return execute.spawn(
            self,
            rec,
            obs["pid"],
            list(argv),
            list(stdio),
            env=list(env),
            user=user,
            workdir=workdir,
            tty=tty,
        )

    def attach_socket(self, ref: str) -> str:
        """Path of the shim's attach socket."""
        cid = self.store.resolve(ref)
        rec, obs = self._observe(cid)
        if not obs["monitored"]:
            raise InvalidState(f"cannot attach to container {rec['name']}: it is {obs['status']}")
        return str(self.store.paths(cid).attach_socket)

    def resize(self, ref: str, cols: int, rows: int) -> None:
        """Set the window size of a TTY container's terminal (its program gets SIGWINCH)."""
        import socket
        import struct

        from runtime.container.fsutil import socket_path

        cid = self.store.resolve(ref)
        rec, obs = self._observe(cid)
        if not rec["spec"].get("tty"):
            raise InvalidState(f"cannot resize container {rec['name']}: it has no TTY")
        if not obs["monitored"]:
            raise InvalidState(f"cannot resize container {rec['name']}: it is {obs['status']}")
        if not (0 < int(cols) < 65536 and 0 < int(rows) < 65536):
            raise InvalidSpec(f"invalid window size {cols}x{rows}")
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        try:
            with socket_path(self.store.paths(cid).winsize_socket) as address:
                sock.sendto(struct.pack("HH", int(rows), int(cols)), address)
        except OSError as err:
            raise InvalidState(f"cannot resize container {rec['name']}: {err}") from None
        finally:
            sock.close()

    def volume_path(self, name: str) -> Path:
        """Host directory of a named volume's data."""
        if not name or "/" in name:
            raise InvalidSpec(f"invalid volume name {name!r}")
        return self.config.volumes_dir / name / "_data"
