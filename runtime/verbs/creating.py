"""Runtime verbs that make containers and start them: create, run, start, rename."""

from __future__ import annotations

import os
import select
import time

from runtime.container import restart_due
from runtime.container import status as sm
from runtime.container.checkpoint import pause_at
from runtime.container.fsutil import proc_start_time, read_json
from runtime.errors import Conflict, InvalidSpec, KernelError, NotFound
from runtime.lazy import LazyModule
from runtime.spec import ContainerSpec

# Loaded when a verb first needs it (ctypes, the shim binary): `ps` and `rm` never do.
launch = LazyModule("runtime.container.launch")
plan = LazyModule("runtime.container.plan")


class CreateVerbs:
    """Create, run, start and rename (mixed into runtime.api.Runtime)."""

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
        # The record's spec parsed once per create (settled below, used by the cgroups, the
        # launch and the answer): each parse costs about 0.2 ms of the caller's CPU.
        spec_obj = self.spec_of(rec)
        self._settle_userns(rec, spec_obj)
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
            if not start_now:  # a run writes its start time while the init sets up (prepared)
                self.store.write_state(cid, {"started_at": None})

            def make_cgroups() -> None:
                """The container's groups, every limit written: made while the launch's
                children fork (the shim-to-be waits for them before it makes the init)."""
                self.make_cgroups(rec, spec_obj)
                pause_at("cgroup")

            answer = {}

            def prepared(info: dict) -> None:
                """While the init sets up: its start time and the answer (the record keeps
                its "creating" mark until launch returns: killed before, it is cleared).

                The answer is composed from what this create knows (its record, the pids the
                launch reported, the state it wrote) instead of read back from the files."""
                state = {"started_at": self.store.now() if start_now else None}
                if start_now:
                    self.store.write_state(cid, state)
                obs = {
                    "status": sm.RUNNING if start_now else sm.CREATED,
                    "pid": info["pid"],
                    "shim_pid": info["shim"],
                    "process": True,
                    "monitored": True,
                }
                command = plan.command_line(spec_obj, rec.get("image_config") or {})
                answer.update(self._compose(cid, dict(rec, command=command), obs, state))

            with self.store.locked(cid):
                launch.launch(self, rec, start_now, prepared, setup=make_cgroups, spec=spec_obj)
                pause_at("launch")
                del rec["creating"]
                self.store.write_record(rec)
        except BaseException:
            self._teardown(cid, rec["name"], network=True)
            raise
        return answer

    def _settle_userns(self, rec: dict, spec: ContainerSpec | None = None) -> None:
        """Write down the new container's user namespace: the default is decided once, here.

        The record then always names it, so a container made before user namespaces were
        the default (no value: the host's) keeps its setting; imports keep their archive's.
        `spec`, the record's parsed (parsed here when not given), is settled alike.
        """
        from runtime.container import userns

        spec = spec if spec is not None else self.spec_of(rec)
        mode, info = userns.resolve(self, spec)
        rec["spec"]["namespaces"]["user"] = mode
        spec.namespaces["user"] = mode
        if info is not None:
            rec["userns"] = info

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

    def start(
        self,
        ref: str,
        checkpoint: str | None = None,
        restart_count: int = 0,
        *,
        unless_user_stopped: bool = False,
    ) -> dict:
        """Start a created or stopped container (from `checkpoint`: restore it); a running one
        is left alone. `restart_count`: restarts so far when a restart policy starts it (its
        shim goes on counting from there), 0 for a user's start. `unless_user_stopped` (a
        restart policy's start): a container a user stopped or killed is left stopped."""
        if checkpoint is not None:
            from runtime.container import checkpoint_verbs

            return checkpoint_verbs.start_from(self, ref, checkpoint)
        cid = self.store.resolve(ref)
        self._finish_pending_stop(cid)  # a start asked during a stop's grace comes after it
        with self.store.locked(cid):
            rec, obs = self._observe(cid)
            sm.check("start", rec["name"], obs["status"])
            if obs["status"] == sm.RUNNING:
                return self.state(cid)
            paths = self.store.paths(cid)
            if unless_user_stopped and (
                self.store.read_state(cid).get("user_stopped") or paths.stop_flag.exists()
            ):
                restart_due.clear(self.config, cid)  # the user's stop cancelled what was owed
                return self.state(cid)
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
            restart_due.clear(self.config, cid)  # started: a restart owed after a reap is paid
        return self.state(cid)

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
