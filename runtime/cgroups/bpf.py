"""The cgroup v2 device allow-list: a small BPF_PROG_TYPE_CGROUP_DEVICE program via bpf(2).

cgroup v2 has no devices.allow file; the kernel instead runs a BPF program attached to the
group for every device open and mknod. The program below is written instruction by
instruction (as runc's devicefilter does): it loads the request from
`struct bpf_cgroup_dev_ctx {u32 access_type; u32 major; u32 minor;}`, where access_type is
`(access << 16) | type`, and returns 1 (allow) at the first matching rule, else 0 (deny).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import struct

from runtime.cgroups.devices import DeviceRule
from runtime.errors import KernelError

_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
_libc.syscall.restype = ctypes.c_long

_SYS_BPF = 321  # x86_64
BPF_PROG_LOAD = 5
BPF_PROG_ATTACH = 8
BPF_PROG_TYPE_CGROUP_DEVICE = 15
BPF_CGROUP_DEVICE = 6
BPF_F_ALLOW_MULTI = 2

# Device types and access bits of bpf_cgroup_dev_ctx (linux/bpf.h).
_DEV_TYPE = {"b": 1, "c": 2}
_ACCESS = {"m": 1, "r": 2, "w": 4}

# Opcodes (linux/bpf_common.h, linux/bpf.h).
_LDX_W = 0x61  # BPF_LDX | BPF_MEM | BPF_W
_AND_K = 0x57  # BPF_ALU64 | BPF_AND | BPF_K
_RSH_K = 0x77  # BPF_ALU64 | BPF_RSH | BPF_K
_MOV_K = 0xB7  # BPF_ALU64 | BPF_MOV | BPF_K
_MOV_X = 0xBF  # BPF_ALU64 | BPF_MOV | BPF_X
_JNE_K = 0x55  # BPF_JMP | BPF_JNE | BPF_K
_EXIT = 0x95  # BPF_JMP | BPF_EXIT

_NEXT = object()  # placeholder jump target: the start of the next rule's block


def _insn(code: int, dst: int = 0, src: int = 0, off: int = 0, imm: int = 0) -> bytes:
    return struct.pack("<BBhi", code, (src << 4) | dst, off, imm)


def _rule_block(rule: DeviceRule) -> list[bytes]:
    """Instructions that return 1 when the request matches `rule`, else fall through."""
    block: list[tuple] = []
    if rule.type != "a":
        block.append((_JNE_K, 2, 0, _NEXT, _DEV_TYPE[rule.type]))
    mask = sum(_ACCESS[c] for c in rule.access)
    if mask != 7:
        # Every requested access bit must be one the rule grants.
        block.append((_MOV_X, 6, 3, 0, 0))
        block.append((_AND_K, 6, 0, 0, ~mask & 7))
        block.append((_JNE_K, 6, 0, _NEXT, 0))
    if rule.major is not None and rule.type != "a":
        block.append((_JNE_K, 4, 0, _NEXT, rule.major))
    if rule.minor is not None and rule.type != "a":
        block.append((_JNE_K, 5, 0, _NEXT, rule.minor))
    block.append((_MOV_K, 0, 0, 0, 1))
    block.append((_EXIT, 0, 0, 0, 0))
    out = []
    for index, (code, dst, src, off, imm) in enumerate(block):
        if off is _NEXT:
            off = len(block) - index - 1
        out.append(_insn(code, dst, src, off, imm))
    return out


def device_filter(rules: list[DeviceRule]) -> bytes:
    """The program's bytecode for an allow-list (deny what no rule allows)."""
    insns = [
        _insn(_LDX_W, 2, 1, 0),  # r2 = type
        _insn(_AND_K, 2, 0, 0, 0xFFFF),
        _insn(_LDX_W, 3, 1, 0),  # r3 = access
        _insn(_RSH_K, 3, 0, 0, 16),
        _insn(_LDX_W, 4, 1, 4),  # r4 = major
        _insn(_LDX_W, 5, 1, 8),  # r5 = minor
    ]
    for rule in rules:
        insns.extend(_rule_block(rule))
    insns.append(_insn(_MOV_K, 0, 0, 0, 0))
    insns.append(_insn(_EXIT))
    return b"".join(insns)


def _bpf(cmd: int, attr: ctypes.Array) -> int:
    return _libc.syscall(
        ctypes.c_long(_SYS_BPF), ctypes.c_int(cmd), attr, ctypes.c_uint(ctypes.sizeof(attr))
    )


def load_device_filter(rules: list[DeviceRule]) -> int:
    """Load the program and return its file descriptor (the caller closes it)."""
    code = device_filter(rules)
    prog = ctypes.create_string_buffer(code, len(code))
    license_ = ctypes.create_string_buffer(b"Apache")
    log = ctypes.create_string_buffer(65536)
    for log_level in (0, 1):  # retry with the verifier's log to explain a refusal
        attr = ctypes.create_string_buffer(128)
        struct.pack_into(
            "<IIQQIIQ",
            attr,
            0,
            BPF_PROG_TYPE_CGROUP_DEVICE,
            len(code) // 8,
            ctypes.addressof(prog),
            ctypes.addressof(license_),
            log_level,
            len(log) if log_level else 0,
            ctypes.addressof(log) if log_level else 0,
        )
        fd = _bpf(BPF_PROG_LOAD, attr)
        if fd >= 0:
            return fd
        err = ctypes.get_errno()
    detail = log.value.decode(errors="replace").strip().splitlines()[-3:]
    raise KernelError(f"cannot load the device filter: {os.strerror(err)} {' | '.join(detail)}")


def attach_device_filter(group_dir: str, rules: list[DeviceRule]) -> None:
    """Load the allow-list program and attach it to the cgroup v2 directory `group_dir`."""
    prog_fd = load_device_filter(rules)
    try:
        dir_fd = os.open(group_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            raw = struct.pack("<IIIII", dir_fd, prog_fd, BPF_CGROUP_DEVICE, BPF_F_ALLOW_MULTI, 0)
            attr = ctypes.create_string_buffer(raw, len(raw))
            if _bpf(BPF_PROG_ATTACH, attr) < 0:
                err = ctypes.get_errno()
                raise KernelError(
                    f"cannot attach the device filter to {group_dir}: {os.strerror(err)}"
                )
        finally:
            os.close(dir_fd)
    finally:
        # The attached group keeps its own reference to the program.
        os.close(prog_fd)
