"""Start a container from a CRIU checkpoint: caller -> (setsid) -> shim-to-be -> criu restore.

Same process shape as launch.py, so the shim is again the parent of the container's init:
the shim-to-be mounts the overlay in a private mount namespace and runs
`criu restore --restore-detached --restore-sibling`, which makes the restored root task
its child (CLONE_PARENT); it then unmounts its copy of the rootfs and execs the shim with
the restored pid. The caller prepares the new network namespace first (same address when
it is free), exactly as a fresh start's network step does, and hands it to CRIU.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

from runtime import linux
from runtime.container import criu, criu_userns, launch, restore_userns, userns
from runtime.container.checkpoint import mark, mark_at
from runtime.container.fsutil import proc_start_time
from runtime.container.paths import ContainerPaths
from runtime.errors import Conflict, InvalidSpec, KernelError


def _netns_holder() -> tuple[int, int]:
    """A child parked in a new network namespace; returns (pid, write end that frees it)."""
    ready_r, ready_w = os.pipe()
    done_r, done_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(ready_r)
            os.close(done_w)
            linux.unshare(linux.CLONE_NEWNET)
            os.write(ready_w, b"1")
            os.read(done_r, 1)
        finally:
            os._exit(0)
    os.close(ready_w)
    os.close(done_r)
    ok = os.read(ready_r, 1)
    os.close(ready_r)
    if ok != b"1":
        raise KernelError("cannot make a network namespace for the restored container")
    return pid, done_w


def _wanted_network(rt, rec: dict, old: dict):
    """The spec's network with the checkpoint's address and MAC asked for (when one network)."""
    import dataclasses

    net = rt.spec_of(rec).network
    nets = (old or {}).get("networks") or {}
    if len(nets) == 1:
        ((name, ep),) = nets.items()
        if name in (net.networks or ["bridge"]):
            return net, dataclasses.replace(net, ip_address=ep["ip"], mac_address=ep["mac"])
    return net, None


def wire(rt, rec: dict, files: dict, old_network: dict, pid: int) -> dict:
    """Wire the netns of `pid` like the container's (its old address if free)."""
    spec, same = _wanted_network(rt, rec, old_network)
    exposed = (rec.get("image_config") or {}).get("config", {}).get("ExposedPorts") or {}
    paths = {k: Path(v) for k, v in files.items() if k != "hostname"}
    if same is not None:
        with contextlib.suppress(Conflict, InvalidSpec):  # taken, or not in this subnet
            return rt.networks.attach(
                rec["id"], rec["name"], pid, same, rec["hostname"], exposed, paths
            )
    return rt.networks.attach(rec["id"], rec["name"], pid, spec, rec["hostname"], exposed, paths)


def prepare_netns(rt, rec: dict, files: dict, old_network: dict) -> tuple[int, dict]:
    """A new netns wired like the container's (its old address if free); returns (fd, network)."""
    pid, release = _netns_holder()
    try:
        network = wire(rt, rec, files, old_network, pid)
        fd = os.open(f"/proc/{pid}/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    finally:
        os.close(release)
        os.waitpid(pid, 0)
    return fd, network


def external_mounts(
    rt, rec: dict, files: dict, points: list[str], console: str | None = None, staged=None
) -> dict[str, str]:
    """Host sources, on this host, for the mount points the dump named external.

    `staged` (a user-namespaced container): a list that receives the (host source, name)
    of each bind mount, whose source becomes an idmapped tree under the rootfs' stage."""
    from runtime.container import plan

    sources = {f"/etc/{name}": path for name, path in files.items()}
    if console:
        sources["/dev/console"] = console
    user_mounts = plan.mounts(rt.spec_of(rec), rt.config)
    for m in user_mounts:
        sources[m["target"]] = m["source"]
    if staged is not None:
        sources.update(restore_userns.device_sources())
    plan.ensure_volumes(user_mounts)
    missing = [p for p in points if p not in sources]
    if missing:
        raise KernelError(f"the checkpoint needs mounts this container lacks: {missing}")
    found = {p: sources[p] for p in points}
    if staged is None:
        return found
    binds = {m["source"] for m in user_mounts if m["type"] == "bind"}
    return restore_userns.staged(found, binds, staged, restore_userns.stage_dir(rec["id"]))


def _shim_to_be(rec, paths, argv, work, inherit_fds, procs_files, msg_w, args, user_fd, binds):
    """In the forked shim-to-be: mount the rootfs privately, run CRIU, become the shim
    (`user_fd`: the user namespace of a user-namespaced container's idmap, else None)."""
    mark("dst:shim-to-be-running")
    linux.unshare(linux.CLONE_NEWNS)
    linux.mount(None, "/", None, linux.MS_REC | linux.MS_PRIVATE)
    mark("dst:own-mount-namespace")
    if user_fd is not None:  # user-namespaced: CRIU's --root is the stage's (argv says so)
        restore_userns.mount_root(rec, paths, user_fd, binds)
        mark("dst:idmapped-root")
    else:
        data = f"lowerdir={':'.join(rec['lower'])},upperdir={paths.upper},workdir={paths.work}"
        linux.mount("overlay", str(paths.merged), "overlay", 0, data)
    for fd in inherit_fds:
        os.set_inheritable(fd, True)
    criu_start = time.monotonic()

    def join_cgroup():
        # CRIU forks the restored tree: it inherits the container's cgroup (and its limits).
        for path in procs_files:
            with open(path, "w") as f:
                f.write("0")

    done = subprocess.run(
        argv,
        cwd=work,
        preexec_fn=join_cgroup,
        pass_fds=inherit_fds,
        capture_output=True,
        timeout=300,
        check=False,
    )
    if done.returncode != 0:
        launch._send(msg_w, error=f"criu restore failed: {criu.log_tail(work / 'restore.log')}")
        os._exit(1)
    cpid = int((work / "pid").read_text().strip())
    criu_done = time.monotonic()
    # The restored tasks have their own mount namespace now; ours need not keep the rootfs.
    if user_fd is not None:
        restore_userns.unmount_root(rec["id"])
    else:
        linux.umount(str(paths.merged), linux.MNT_DETACH)
    me = os.getpid()
    launch._send(
        msg_w,
        pid=cpid,
        shim=me,
        shim_start=proc_start_time(me),
        pid_start=proc_start_time(cpid),
        criu_done=criu_done,
        criu_start=criu_start,
    )
    args["pid"] = cpid
    launch.exec_shim(args)


def _tty_stdio(fds: dict, rng: dict | None = None) -> list[int]:
    """A TTY container's new terminal: a pty whose master goes to the shim (as the init of a
    fresh start sends it) and whose slave CRIU hands the restored tasks in place of the old
    one (the dump named it external: tty[rdev:dev])."""
    master, slave = os.openpty()
    sock = socket.socket(fileno=fds.pop("pty_peer"))
    try:
        socket.send_fds(sock, [b"m"], [master])
    finally:
        sock.close()
        os.close(master)
    os.set_inheritable(slave, False)
    if rng:
        # CRIU gives the slave the owner it had inside (root, group tty: the container's
        # devpts has gid=5) from inside the user namespace, which may only keep it as is.
        os.fchown(slave, rng["first"], rng["first"] + 5)
    return [slave] * 3


def _check_userns(images: Path, rec: dict, rng: dict | None) -> None:
    """The checkpoint's user namespace mapped to the record's range (rewritten if it was
    made with another: an import or a migration to a host that gave the key another)."""
    if rng is None:
        if criu_userns.image(images) is not None:
            raise InvalidSpec(
                f"the checkpoint ran in a user namespace of its own; container {rec['name']} "
                "runs in the host's"
            )
        return
    if criu_userns.remap(images, rng["first"], rng["count"]) is None:
        raise InvalidSpec(
            f"the checkpoint ran in the host's user namespace; container {rec['name']} "
            "has one of its own"
        )


def _wire_restored(rt, rec, files, meta, handoff, shake, deadline) -> dict | None:
    """Wire the network namespace CRIU made inside the restored user namespace; returns the
    network (None if the restore failed before: the handshake then says why)."""
    pid = handoff.wait_pid(shake.msg_r, deadline)
    mark("dst:criu-made-netns")
    if pid is None:
        return None
    try:
        network = wire(rt, rec, files, meta.get("network") or {}, pid)
    except BaseException:
        handoff.answer(False)
        with contextlib.suppress(Exception):
            shake.next(deadline)  # CRIU gives up: the shim-to-be reports and exits
        raise
    handoff.answer(True)
    return network


def restore(rt, rec: dict, images: Path, meta: dict, lazy=None) -> dict:
    """Restore the checkpoint in `images` as container `rec` under a new shim; returns its info.

    With `lazy(images, work)` (post-copy): it starts CRIU's lazy-pages daemon in the restore's
    work directory, and the restore leaves the memory to it (postcopy.py)."""
    paths = ContainerPaths(rt.config, rec["id"])
    rng = restore_userns.range_of(rt, rec)
    _check_userns(images, rec, rng)
    files = launch.etc_files(rt, rec, paths)
    for flag in (paths.stop_flag, paths.caller_cleans, paths.fifo):
        flag.unlink(missing_ok=True)
    mark("dst:restore-begin")
    fds = launch.make_stdio(rec["spec"])
    stdio = _tty_stdio(fds, rng) if rec["spec"]["tty"] else launch.child_stdio(fds)
    binds: list = [] if rng else None
    netns_fd = network = user_fd = None
    try:
        console = os.ttyname(stdio[0]) if rec["spec"]["tty"] else None
        mounts = external_mounts(rt, rec, files, meta["mounts"], console, binds)
        # The idmap's user namespace, made by this process once per range (restore_userns).
        user_fd = userns.kept(rng["first"], rng["count"]) if rng else None
        mark("dst:external-mounts")
        if not rng:  # else wired once CRIU has made it (restore_userns.NetnsHandoff)
            netns_fd, network = prepare_netns(rt, rec, files, meta.get("network") or {})
    except BaseException:
        for fd in {*fds.values(), *stdio, user_fd} - {None}:
            os.close(fd)
        raise
    inherit = {criu.NETNS_KEY: netns_fd} if netns_fd is not None else {}
    for number, key in enumerate(meta["stdio"]):
        inherit.setdefault(key, stdio[number])
    work = paths.run_dir / "criu-restore"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True, mode=0o700)
    handoff = restore_userns.NetnsHandoff(work) if rng else None
    mark("dst:handoff")
    argv = criu.restore_argv(
        images,
        work,
        f"{restore_userns.stage_dir(rec['id'])}/root" if rng else str(paths.merged),
        tcp_established=meta.get("tcp_established", False),
        mounts=mounts,
        inherit=inherit,
        netns_script=handoff.script if handoff else None,
        lazy=lazy is not None,
    )
    mark("dst:argv")
    if lazy is not None:
        lazy(images, work)
    listen = launch.listen_socket(paths.attach_socket)
    args = launch.shim_args(rt, rec, paths, fds, listen)
    winsize = launch.winsize_socket(paths.winsize_socket) if rec["spec"]["tty"] else None
    args["winsize"] = winsize
    procs = rt.cgroups.procs_files(rec["id"])
    msg_r, msg_w = os.pipe()
    mark("dst:shim-args")
    lent = restore_userns.lend_images(images, rng["first"]) if rng else []
    mark("dst:fork-shim-to-be")
    pid0 = linux.light_fork()
    if pid0 == 0:
        try:
            mark("dst:detaching-child-running")
            os.setsid()
            if handoff:  # the caller alone holds the FIFOs' other ends
                handoff.close()
            if linux.light_fork() == 0:
                os.close(msg_r)
                inherit_fds = list(set(inherit.values()))
                _shim_to_be(rec, paths, argv, work, inherit_fds, procs, msg_w, args, user_fd, binds)
        except BaseException as err:  # noqa: BLE001 (a forked child reports and exits)
            with contextlib.suppress(OSError):
                launch._send(msg_w, error=f"restore failed: {err}")
        finally:
            os._exit(0)
    os.waitpid(pid0, 0)
    for fd in {*fds.values(), *stdio, listen, msg_w, netns_fd, winsize, user_fd} - {None}:
        os.close(fd)
    shake = launch.Handshake(msg_r, -1)
    deadline = time.monotonic() + 300
    info = {}
    try:
        if handoff:
            network = _wire_restored(rt, rec, files, meta, handoff, shake, deadline)
            mark("dst:netns-wired")
        info = shake.next(deadline)
        mark("dst:shim-says-running")
        if "criu_done" in info:
            mark_at("dst:criu-restore-started", info.pop("criu_start"))
            mark_at("dst:criu-restore-exited", info.pop("criu_done"))
        if "error" in info:
            raise KernelError(info["error"])
    except BaseException:
        launch._kill_quietly(info.get("pid"))
        with contextlib.suppress(OSError):
            rt.networks.detach(rec["id"])
        raise
    finally:
        restore_userns.give_back(lent)
        if handoff:
            handoff.close()
            restore_userns.remove_stage_dir(rec["id"])
        os.close(msg_r)
        shutil.rmtree(work, ignore_errors=True)
    info["network"] = network
    launch.record_shim(paths, info)
    mark("dst:restore-end")
    return info
