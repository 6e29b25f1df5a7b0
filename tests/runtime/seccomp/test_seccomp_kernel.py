"""The default filter loaded for real into forked children, against the running kernel."""

from __future__ import annotations

import ctypes
import mmap
import os
import subprocess
import threading

import pytest
from seccomp_probe import NR, killed_by, raw, run_child

import runtime.seccomp as seccomp
from runtime.spec import DEFAULT_CAPABILITIES

pytestmark = [pytest.mark.root, pytest.mark.timeout(60)]

DOCKER = list(DEFAULT_CAPABILITIES)
CLONE_NEWNS = 0x00020000
KEYCTL_GET_KEYRING_ID = 0
KEY_SPEC_SESSION_KEYRING = -3
KCMP_FILE = 0
AF_UNIX, AF_VSOCK, SOCK_STREAM = 1, 40, 1
ADDR_NO_RANDOMIZE = 0x0040000


@pytest.fixture(autouse=True)
def _root():
    if os.geteuid() != 0:
        pytest.skip("seccomp kernel tests need root")


def privileged_probes():
    """Calls the default profile must refuse; run with and without a filter."""
    pid = os.getpid()
    return {
        "keyctl": raw(NR["keyctl"], KEYCTL_GET_KEYRING_ID, KEY_SPEC_SESSION_KEYRING, 0),
        "unshare": raw(NR["unshare"], CLONE_NEWNS),
        "mount": raw(NR["mount"], 0, 0, 0, 0, 0),
        "clone3": raw(NR["clone3"], 0, 0),
        "personality_bad": raw(NR["personality"], ADDR_NO_RANDOMIZE),
        "vsock": raw(NR["socket"], AF_VSOCK, SOCK_STREAM, 0),
        "vsock_high_bits": raw(NR["socket"], (1 << 32) | AF_VSOCK, SOCK_STREAM, 0),
        "kcmp": raw(NR["kcmp"], pid, pid, KCMP_FILE, 0, 0),
    }


def test_default_filter_refuses_privileged_calls():
    unfiltered, status = run_child(privileged_probes)
    assert status == 0
    # Without a filter, root gets past the syscall entry: the kernel answers each call itself.
    assert unfiltered["keyctl"] != "EPERM"
    assert unfiltered["unshare"] == 0
    assert unfiltered["mount"] == "EFAULT"
    assert unfiltered["clone3"] == "EINVAL"
    assert unfiltered["kcmp"] != "EPERM"

    filtered, status = run_child(privileged_probes, DOCKER)
    assert status == 0
    assert filtered == {
        "keyctl": "EPERM",
        "unshare": "EPERM",
        "mount": "EPERM",
        "clone3": "ENOSYS",
        "personality_bad": "EPERM",
        "vsock": "EPERM",
        "vsock_high_bits": "EPERM",
        "kcmp": "EPERM",
    }


def test_foreign_and_unknown_numbers():
    highest = max(seccomp.syscall_table().values())

    def probes():
        return {
            "x32_getpid": raw(0x40000000 | NR["getpid"]),
            "hole": raw(400),
            "past_table": raw(highest + 100),
            "getpid": raw(NR["getpid"]) == os.getpid(),
        }

    unfiltered, _ = run_child(probes)
    filtered, status = run_child(probes, DOCKER)
    assert status == 0
    assert unfiltered["hole"] == "ENOSYS" and unfiltered["past_table"] == "ENOSYS"
    assert filtered == {
        "x32_getpid": "EPERM",
        "hole": "EPERM",
        "past_table": "ENOSYS",
        "getpid": True,
    }


def workload():
    """An ordinary program's life: files, memory, processes, threads, exec, sockets."""
    results = {"seccomp_mode": seccomp.seccomp_mode()}
    path = f"/tmp/berth-seccomp-{os.getpid()}"
    try:
        with open(path, "w") as out:
            out.write("hello")
        with open(path) as src:
            results["read"] = src.read()
    finally:
        os.unlink(path)
    with mmap.mmap(-1, 4096) as region:
        region[:2] = b"ok"
        results["mmap"] = bytes(region[:2]).decode()
    results["getpid"] = raw(NR["getpid"]) == os.getpid()
    child = os.fork()  # glibc's fork is clone(SIGCHLD | CLONE_CHILD_*)
    if child == 0:
        os._exit(7)
    results["fork_exit"] = os.waitstatus_to_exitcode(os.waitpid(child, 0)[1])
    # pthread_create tries clone3 first; the filter's ENOSYS makes glibc fall back to clone.
    seen = []
    thread = threading.Thread(target=lambda: seen.append(threading.get_native_id()))
    thread.start()
    thread.join()
    results["thread_ran"] = len(seen) == 1
    run = subprocess.run(
        ["/bin/busybox", "sh", "-c", "echo ok"], capture_output=True, timeout=20, check=False
    )
    results["busybox"] = [run.returncode, run.stdout.decode()]
    results["busybox_true"] = subprocess.run(["/bin/busybox", "true"], check=False).returncode
    results["personality_query"] = raw(NR["personality"], 0xFFFFFFFF)
    fd = raw(NR["socket"], AF_UNIX, SOCK_STREAM, 0)
    results["unix_socket"] = isinstance(fd, int) and fd >= 0
    if results["unix_socket"]:
        os.close(fd)
    return results


def test_normal_workload_runs_under_the_filter():
    results, status = run_child(workload, DOCKER)
    assert status == 0
    assert results["seccomp_mode"] == 2
    assert results["read"] == "hello"
    assert results["mmap"] == "ok"
    assert results["getpid"] is True
    assert results["fork_exit"] == 7
    assert results["thread_ran"] is True
    assert results["busybox"] == [0, "ok\n"]
    assert results["busybox_true"] == 0
    assert isinstance(results["personality_query"], int) and results["personality_query"] >= 0
    assert results["unix_socket"] is True


def test_exec_keeps_the_filter():
    """A program started by execve still has the filter: busybox's unshare is refused."""

    def body():
        shell = "unshare -m true; echo rc=$?; grep Seccomp: /proc/self/status"
        run = subprocess.run(["/bin/busybox", "sh", "-c", shell], capture_output=True, check=False)
        return run.stdout.decode()

    output, status = run_child(body, DOCKER)
    assert status == 0
    assert "rc=0" not in output
    assert "Seccomp:\t2" in output
    plain, _ = run_child(body)
    assert "rc=0" in plain


def test_sys_admin_allows_namespaces():
    def probes():
        return {
            "unshare": raw(NR["unshare"], CLONE_NEWNS),
            "mount": raw(NR["mount"], 0, 0, 0, 0, 0),
            "clone3": raw(NR["clone3"], 0, 0),
        }

    results, status = run_child(probes, DOCKER + ["SYS_ADMIN"])
    assert status == 0
    # Past the filter, the kernel itself answers (and unshare of a mount namespace succeeds).
    assert results == {"unshare": 0, "mount": "EFAULT", "clone3": "EINVAL"}


def test_capability_gated_chroot_and_kcmp():
    def probes():
        pid = os.getpid()
        root = ctypes.create_string_buffer(b"/")
        return {
            "chroot": raw(NR["chroot"], ctypes.addressof(root)),
            "kcmp": raw(NR["kcmp"], pid, pid, KCMP_FILE, 0, 0),
        }

    without, _ = run_child(probes, [c for c in DOCKER if c != "SYS_CHROOT"])
    assert without == {"chroot": "EPERM", "kcmp": "EPERM"}
    with_caps, _ = run_child(probes, DOCKER + ["SYS_PTRACE"])
    assert with_caps == {"chroot": 0, "kcmp": 0}


def _int80_getpid():
    """Make the i386 getpid syscall (number 20) through int 0x80 from mapped machine code."""
    code = bytes([0xB8, 20, 0, 0, 0, 0xCD, 0x80, 0xC3])  # mov eax, 20; int 0x80; ret
    region = mmap.mmap(-1, mmap.PAGESIZE, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
    region.write(code)
    address = ctypes.addressof(ctypes.c_char.from_buffer(region))
    return ctypes.CFUNCTYPE(ctypes.c_int)(address)()


def test_i386_abi_kills_the_process():
    plain, status = run_child(_int80_getpid)
    if plain is None:
        pytest.skip(f"this kernel has no i386 syscall entry (child ended by {killed_by(status)})")
    assert plain > 0
    result, status = run_child(_int80_getpid, DOCKER)
    assert result is None
    assert killed_by(status) == "SIGSYS"


def test_tsync_filters_threads_already_running():
    def body():
        go, done = threading.Event(), threading.Event()
        answer = {}

        def worker():
            go.wait(10)
            answer["keyctl"] = raw(NR["keyctl"], KEYCTL_GET_KEYRING_ID, KEY_SPEC_SESSION_KEYRING, 0)
            done.set()

        thread = threading.Thread(target=worker)
        thread.start()
        seccomp.install(seccomp.build_filter(DOCKER), tsync=True)
        go.set()
        done.wait(10)
        thread.join()
        return answer

    results, status = run_child(body, None)  # no_new_privs set, filter installed inside body
    assert status == 0
    assert results == {"keyctl": "EPERM"}


def test_install_without_no_new_privs_as_non_root_is_refused_clearly():
    def body():
        os.setresgid(65534, 65534, 65534)
        os.setresuid(65534, 65534, 65534)  # drops every capability, CAP_SYS_ADMIN included
        try:
            seccomp.install(seccomp.build_filter(DOCKER))
        except seccomp.SeccompError as exc:
            return [str(exc), seccomp.seccomp_mode()]
        return ["installed", seccomp.seccomp_mode()]

    results, status = run_child(body, None, no_new_privs=False)
    assert status == 0
    assert "no_new_privs" in results[0]
    assert results[1] == 0  # nothing half-done: no filter attached


def test_kernel_rejects_a_malformed_program():
    def body():
        bad = bytes([0xFF, 0, 0, 0, 0, 0, 0, 0])  # unknown opcode
        try:
            seccomp.install(bad)
        except seccomp.SeccompError as exc:
            return [str(exc), seccomp.seccomp_mode()]
        return ["installed", seccomp.seccomp_mode()]

    results, _ = run_child(body, None)
    assert "EINVAL" in results[0]
    assert results[1] == 0


def test_privilege_drop_still_works_after_the_filter():
    """Without no_new_privs the filter goes in while CAP_SYS_ADMIN is held, before the drop.

    The drop itself (bounding set, ambient set, groups, gid, uid) and the exec must then pass
    the filter, as they do in the container's init.
    """
    from runtime.linux import PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, PR_CAPBSET_DROP, prctl

    def body():
        with open("/proc/sys/kernel/cap_last_cap") as f:
            last = int(f.read())
        for cap in range(last + 1):
            if cap != 21:  # keep CAP_SYS_ADMIN in the bounding set only, to show it is unused
                prctl(PR_CAPBSET_DROP, cap)
        prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL)
        os.setgroups([65534])
        os.setgid(65534)
        os.setuid(65534)
        run = subprocess.run(["/bin/busybox", "id", "-u"], capture_output=True, check=False)
        return [run.returncode, run.stdout.decode().strip(), raw(NR["unshare"], CLONE_NEWNS)]

    results, status = run_child(body, DOCKER, no_new_privs=False)
    assert status == 0
    assert results == [0, "65534", "EPERM"]
