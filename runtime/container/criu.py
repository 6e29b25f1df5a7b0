"""CRIU's command lines for Berth's containers: one fixed option set for dump and restore.

Everything the container holds that lives outside its own namespaces is named as external
at dump time and handed back at restore time: the network namespace (the runtime makes a
new one with the same address, "extnet"), bind mounts of host files (/etc/hosts and its
siblings, volumes and bind mounts, keyed by their path in the container), and the stdio
descriptors the shim holds the other end of (pipes, the host's /dev/null).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import shutil
import stat
import subprocess
import tempfile
from pathlib import Path

from runtime.container import criu_probes
from runtime.errors import InvalidSpec, KernelError

NETNS_KEY = "extnet"
PTS_MAJORS = range(136, 144)  # Unix98 pty slaves
# Options both sides pass: unix sockets to peers outside, POSIX/flock locks, and CRIU's
# own log in the work directory (read back into the error message when it fails).
COMMON = ["--ext-unix-sk", "--file-locks", "-v2"]
_FRESH_ROOT = "/"


def binary() -> str:
    """The criu program (KernelError with a clear hint if the host has none that works)."""
    found = shutil.which("criu", path=os.environ.get("PATH", "") + ":/usr/local/sbin:/usr/sbin")
    if not found:
        raise KernelError(
            "checkpoint/restore needs CRIU on this host: install the 'criu' package (>= 3.19 "
            "on kernels with [vvar_vclock], e.g. 6.x)"
        )
    problem = unusable(found)
    if problem:
        raise KernelError(problem)
    _probe_cache_kept(found)
    return found


@functools.cache
def _probe_cache_kept(program: str) -> bool:
    """criu_probes.keep once per process: the first call comes before any freeze (the
    target's preparation, the source's dirty-tracking check)."""
    return criu_probes.keep(program, _boot_marker(program, "kdat-kept"))


@functools.cache
def unusable(program: str) -> str:
    """Why `program` cannot checkpoint on this kernel ("" when `criu check` passes).

    Debian 12's CRIU 3.17 fails on 6.x kernels before it does anything (it does not know the
    kernel's vDSO layout): say so once, instead of failing half-way through a dump. A pass is
    remembered for this boot and this binary (a marker file), so each command line run does
    not pay for `criu check` again.
    """
    marker = _boot_marker(program, "check-ok")
    if marker and marker.exists():
        return ""
    try:
        done = subprocess.run([program, "check"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as err:
        return f"CRIU ({program}) does not run: {err}"
    text = (done.stdout + done.stderr).strip()
    if done.returncode == 0 and "Error" not in text:
        if marker:
            with contextlib.suppress(OSError):
                marker.touch(mode=0o600)
        return ""
    last = text.splitlines()[-1] if text else f"exit code {done.returncode}"
    return (
        f"CRIU ({program}) does not work on this kernel ({last}); checkpoint/restore needs "
        "CRIU >= 3.19 on 6.x kernels"
    )


def _boot_marker(program: str, what: str) -> Path | None:
    """The file whose presence says `what` was done for this binary since this boot."""
    try:
        st = os.stat(program)
        with open("/proc/sys/kernel/random/boot_id") as f:
            boot = f.read().strip()
    except OSError:
        return None
    key = hashlib.sha256(f"{program}\0{st.st_size}\0{st.st_mtime_ns}\0{boot}".encode())
    return Path(tempfile.gettempdir()) / f"berth-cr-{what}-{key.hexdigest()[:24]}"


@functools.cache
def dirty_tracking() -> bool:
    """Whether the kernel tracks pages written since a pre-dump (CONFIG_MEM_SOFT_DIRTY):
    without it every round, and the final dump, write all the memory again."""
    try:
        done = subprocess.run(
            [binary(), "check", "--feature", "mem_dirty_track"],
            capture_output=True,
            text=True,
            timeout=30,
        )
    except (OSError, subprocess.TimeoutExpired, KernelError):
        return False
    return done.returncode == 0 and "OFF" not in done.stdout + done.stderr


def fd_key(pid: int, fd: int) -> str:
    """CRIU's name for descriptor `fd` of `pid` when its file is outside the container."""
    target = os.readlink(f"/proc/{pid}/fd/{fd}")
    if target.startswith("pipe:"):
        return target  # pipe:[inode]
    st = os.stat(f"/proc/{pid}/fd/{fd}")
    if stat.S_ISCHR(st.st_mode) and os.major(st.st_rdev) in PTS_MAJORS:
        # A TTY container's pty slave: its master is the shim's, outside the dumped tree.
        return f"tty[{st.st_rdev:x}:{st.st_dev:x}]"
    mnt_id = 0
    with open(f"/proc/{pid}/fdinfo/{fd}") as info:
        for line in info:
            if line.startswith("mnt_id:"):
                mnt_id = int(line.split()[1])
    ino = os.stat(f"/proc/{pid}/fd/{fd}").st_ino
    return f"file[{mnt_id:x}:{ino:x}]"


def external_mounts(pid: int) -> list[str]:
    """Mount points in the container that are binds of something outside it (not fresh)."""
    found = []
    with open(f"/proc/{pid}/mountinfo") as f:
        for line in f:
            fields = line.split()
            root, point = fields[3], fields[4]
            fstype = fields[fields.index("-") + 1]
            # Fresh mounts (proc, tmpfs, sysfs...) have root "/"; binds from inside the tree
            # of a fresh mount (the masks: /dev/null over /proc/keys) are CRIU's to resolve.
            if root != _FRESH_ROOT and fstype not in ("tmpfs", "proc", "sysfs", "devpts"):
                found.append(point)
            elif fstype == "devpts" and root not in (_FRESH_ROOT, "/ptmx"):
                # /dev/console of a TTY container: a bind of its pty slave, whose master is
                # the shim's; the restore binds the new terminal's slave there instead.
                found.append(point)
    return found


def dump_argv(
    pid: int,
    images: Path,
    *,
    leave_running: bool,
    tcp_established: bool,
    freezer: str | None,
    mounts: list[str],
    files: list[str],
    parent: str | None = None,
    userns: bool = False,
) -> list[str]:
    """`criu dump` of the tree under `pid` into `images` (only pages dirtied since the
    pre-dump in `parent`, a path relative to `images`, when given).

    A container in a user namespace of its own also owns its network namespace, which no
    namespace made beforehand can replace (setns into a network namespace of the host's
    user namespace is refused from inside the restored one): its network is left out
    ("empty") and wired again at restore, in the namespace CRIU makes (netns_script).
    """
    argv = [binary(), "dump", "-t", str(pid), "-D", str(images), "-o", "dump.log", *COMMON]
    if userns:
        argv += ["--empty-ns", "net"]
    else:
        netns = os.stat(f"/proc/{pid}/ns/net").st_ino
        argv += ["--external", f"net[{netns}]:{NETNS_KEY}"]
    for point in mounts:
        argv += ["--external", f"mnt[{point}]:{point}"]
    for key in set(files):
        if key.startswith(("file[", "tty[")):
            argv += ["--external", key]
    if freezer:
        argv += ["--freeze-cgroup", freezer]
    # Connections a server has not accepted yet cannot be carried: their clients retry.
    argv.append("--skip-in-flight")
    if leave_running:
        argv.append("--leave-running")
    argv.append(_tcp_option(tcp_established))
    if not tcp_established:
        # Nothing to hold still with connections closed: no lock at dump, and the restore
        # (which reads the method from the images) skips its unlock, two iptables-restore
        # runs that fail on a rule never added (tens of ms of every restore's freeze).
        argv += ["--network-lock", "skip"]
    if parent:
        argv += ["--track-mem", "--prev-images-dir", parent]
    return argv


def predump_argv(pid: int, images: Path, *, freezer: str | None, parent: str | None) -> list[str]:
    """`criu pre-dump`: the tree's memory into `images` while it keeps running (pages dirtied
    since the pre-dump in `parent`, relative to `images`, when given); --track-mem arms the
    kernel's soft-dirty bits for the next round."""
    argv = [binary(), "pre-dump", "-t", str(pid), "-D", str(images), "-o", "dump.log", "-v2"]
    argv.append("--track-mem")
    if freezer:
        argv += ["--freeze-cgroup", freezer]
    if parent:
        argv += ["--prev-images-dir", parent]
    return argv


def restore_argv(
    images: Path,
    work: Path,
    root: str,
    *,
    tcp_established: bool,
    mounts: dict[str, str],
    inherit: dict[str, int],
    netns_script: Path | None = None,
    lazy: bool = False,
) -> list[str]:
    """`criu restore` detached, the root task a child of the caller (the shim-to-be).

    With `netns_script` (a user-namespaced container) CRIU makes an empty network namespace
    inside the user namespace it restores, and runs the script once it exists
    (setup-namespaces): the runtime wires it there, as a fresh start does.
    """
    argv = [binary(), "restore", "-D", str(images), "-W", str(work), "-o", "restore.log"]
    argv += [*COMMON, "--root", root, "--restore-detached", "--restore-sibling"]
    # The restored tasks stay in the cgroup CRIU runs in (the new container's, limits set):
    # never the cgroup paths of the dump, which belong to the source container (and, on the
    # same machine, are killed with it).
    argv.append("--manage-cgroups=ignore")
    argv += ["--pidfile", str(work / "pid")]
    if netns_script is not None:
        argv += ["--empty-ns", "net", "--action-script", str(netns_script)]
    for point, source in mounts.items():
        argv += ["--external", f"mnt[{point}]:{source}"]
    for key, fd in inherit.items():
        argv += ["--inherit-fd", f"fd[{fd}]:{key}"]
    argv.append(_tcp_option(tcp_established))
    if lazy:  # memory comes later, from `criu lazy-pages` (postcopy.py) in the same work dir
        argv.append("--lazy-pages")
    return argv


# CRIU's lazy page server reads pages through a pipe of up to 819 pages (PIPE_MAX_SIZE): a
# smaller fs.pipe-max-size makes it fail silently and drop the target's first page request.
LAZY_PIPE_BYTES = 4 << 20
_PIPE_MAX = Path("/proc/sys/fs/pipe-max-size")


def lazy_pipes() -> None:
    """Raise fs.pipe-max-size to what a lazy dump needs (KernelError when it cannot be)."""
    try:
        if int(_PIPE_MAX.read_text()) >= LAZY_PIPE_BYTES:
            return
        _PIPE_MAX.write_text(str(LAZY_PIPE_BYTES))
    except (OSError, ValueError) as err:
        raise KernelError(
            f"post-copy needs fs.pipe-max-size >= {LAZY_PIPE_BYTES} (CRIU's page pipes) and "
            f"it cannot be raised here ({err}); use a pre-copy migration"
        ) from None


def lazy_dump_options(ps_socket: int, status_fd: int, work: Path) -> list[str]:
    """What turns a dump into a lazy one: memory stays in the frozen tasks and is served on
    the connected socket `ps_socket` (no port opened); CRIU writes a byte on `status_fd` when
    everything but the memory is written; its log goes to `work` (not among the images)."""
    return [
        "--lazy-pages",
        "--ps-socket",
        str(ps_socket),
        "--status-fd",
        str(status_fd),
        "-W",
        str(work),
    ]


def lazy_pages_argv(images: Path, work: Path, ps_socket: int, status_fd: int, log: Path):
    """`criu lazy-pages` on the target: takes the restore's userfaultfds (its socket is in
    `work`) and fetches their pages over the connected socket `ps_socket`."""
    return [
        binary(),
        "lazy-pages",
        "--page-server",
        "--ps-socket",
        str(ps_socket),
        "-D",
        str(images),
        "-W",
        str(work),
        "-o",
        str(log),
        "-v2",
        "--status-fd",
        str(status_fd),
    ]


def _tcp_option(established: bool) -> str:
    """Established connections carried (on request), else closed: a server's clients see
    their connection end and reconnect, instead of the dump failing on them."""
    return "--tcp-established" if established else "--tcp-close"


def log_tail(path: Path, lines: int = 6) -> str:
    """The last error lines of a CRIU log, for the message a user sees."""
    try:
        text = path.read_text(errors="replace").splitlines()
    except OSError:
        return "no log"
    errors = [line.strip() for line in text if "Error" in line and not _noise(line)]
    return "; ".join((errors or text)[-lines:])


def _noise(line: str) -> bool:
    """CRIU's "Error" lines that say nothing about a failure: its RLIMIT_NOFILE note, and
    the probe for tun devices, which a restore into a user namespace always fails."""
    return "RLIMIT_NOFILE" in line or "Unable to create tun" in line


def run_dump(argv: list[str], images: Path, follow=None) -> None:
    """Run a dump; KernelError with CRIU's own words if it fails. `follow(images, proc)`,
    when given, runs while CRIU does (it reads the images as they are written) and must
    return only once `proc` has exited."""
    if follow is None:
        done = subprocess.run(argv, cwd=images, capture_output=True, timeout=300, check=False)
        code = done.returncode
    else:
        images.mkdir(exist_ok=True, mode=0o700)
        proc = subprocess.Popen(
            argv, cwd=images, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        try:
            follow(images, proc)
        finally:
            code = proc.wait()  # never killed half-way: it may have its parasite in the tasks
    if code != 0:
        raise KernelError(f"criu dump failed: {log_tail(images / 'dump.log')}")


def refuse_unsupported(rec: dict) -> None:
    """InvalidSpec for containers whose state CRIU (or this runtime's use of it) cannot carry."""
    spec, name = rec["spec"], rec["name"]
    why = None
    if spec.get("devices"):
        why = "it has devices passed through (--device)"
    elif spec.get("privileged"):
        why = "it is privileged (the host's /dev and /sys are bind-mounted)"
    elif (rec.get("userns") or {}).get("join"):
        why = "it shares the user namespace of another container"
    elif spec["network"]["mode"] == "host" or spec["network"]["mode"].startswith("container:"):
        why = f"it shares a network namespace (network {spec['network']['mode']})"
    elif any(
        str(v).startswith(("container:", "host"))
        for kind, v in spec["namespaces"].items()
        if kind != "user"  # the host's user namespace is no namespace of its own to carry
    ):
        why = "it shares namespaces with the host or another container"
    if why:
        raise InvalidSpec(f"cannot checkpoint container {name}: {why}")
