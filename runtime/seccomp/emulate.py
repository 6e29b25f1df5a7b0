"""Run a seccomp BPF program in Python: explains a verdict without a kernel, and backs unit tests."""

from __future__ import annotations

import struct

from runtime.seccomp import bpf

_DATA = struct.Struct("<IIQ6Q")  # struct seccomp_data (nr read as the u32 the filter sees)


def seccomp_data(nr: int, arch: int = bpf.AUDIT_ARCH_X86_64, args=(), ip: int = 0) -> bytes:
    """The 64-byte struct seccomp_data the kernel hands the filter."""
    padded = [a & 0xFFFFFFFFFFFFFFFF for a in args] + [0] * (6 - len(args))
    return _DATA.pack(nr & 0xFFFFFFFF, arch, ip, *padded)


def run(program: bytes | list[bpf.Insn], data: bytes) -> int:
    """The action `program` returns for `data`, following the kernel's classic-BPF rules."""
    insns = bpf.decode(program) if isinstance(program, bytes) else program
    acc = 0
    pc = 0
    while pc < len(insns):
        insn = insns[pc]
        pc += 1
        if insn.code == bpf.LD_W_ABS:
            if insn.k % 4 or insn.k + 4 > len(data):
                raise ValueError(f"misaligned or out-of-range load at {pc - 1}")
            acc = struct.unpack_from("<I", data, insn.k)[0]
        elif insn.code == bpf.ALU_AND_K:
            acc &= insn.k
        elif insn.code == bpf.JMP_JA:
            pc += insn.k
        elif insn.code in (bpf.JMP_JEQ_K, bpf.JMP_JGT_K, bpf.JMP_JGE_K):
            taken = {
                bpf.JMP_JEQ_K: acc == insn.k,
                bpf.JMP_JGT_K: acc > insn.k,
                bpf.JMP_JGE_K: acc >= insn.k,
            }[insn.code]
            pc += insn.jt if taken else insn.jf
        elif insn.code == bpf.RET_K:
            return insn.k
        else:
            raise ValueError(f"opcode {insn.code:#x} not supported by the emulator")
    raise ValueError("program ran off its end without returning")


def describe(action: int) -> str:
    """A short human name for a return action: 'allow', 'errno 1', 'kill-process', ..."""
    kind = action & bpf.RET_ACTION_MASK
    if action == bpf.RET_KILL_PROCESS:
        return "kill-process"
    if kind == bpf.RET_ALLOW:
        return "allow"
    if kind == bpf.RET_ERRNO:
        return f"errno {action & bpf.RET_DATA_MASK}"
    if kind == bpf.RET_KILL_THREAD:
        return "kill-thread"
    return f"action {action:#x}"
