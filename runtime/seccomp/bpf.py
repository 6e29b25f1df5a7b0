"""Classic BPF for seccomp: opcodes, return actions and the sock_filter encoding."""

from __future__ import annotations

import struct
from dataclasses import dataclass

# Instruction classes and modes (linux/filter.h, linux/bpf_common.h).
LD_W_ABS = 0x00 | 0x00 | 0x20  # BPF_LD | BPF_W | BPF_ABS: A = 32-bit word of seccomp_data
ALU_AND_K = 0x04 | 0x50 | 0x00  # BPF_ALU | BPF_AND | BPF_K: A &= k
JMP_JA = 0x05 | 0x00  # BPF_JMP | BPF_JA: unconditional, 32-bit offset in k
JMP_JEQ_K = 0x05 | 0x10
JMP_JGT_K = 0x05 | 0x20
JMP_JGE_K = 0x05 | 0x30
RET_K = 0x06 | 0x00
MAX_INSNS = 4096  # BPF_MAXINSNS: the kernel refuses longer programs
MAX_JUMP = 255  # jt/jf are 8 bits

# Return actions (linux/seccomp.h); the kernel applies the strictest of all filters.
RET_KILL_PROCESS = 0x80000000
RET_KILL_THREAD = 0x00000000
RET_TRAP = 0x00030000
RET_ERRNO = 0x00050000
RET_LOG = 0x7FFC0000
RET_ALLOW = 0x7FFF0000
RET_ACTION_MASK = 0xFFFF0000
RET_DATA_MASK = 0x0000FFFF

# struct seccomp_data: int nr; u32 arch; u64 instruction_pointer; u64 args[6].
OFF_NR = 0
OFF_ARCH = 4
OFF_ARGS = 16

AUDIT_ARCH_X86_64 = 0xC000003E  # EM_X86_64 | __AUDIT_ARCH_64BIT | __AUDIT_ARCH_LE
AUDIT_ARCH_I386 = 0x40000003
X32_SYSCALL_BIT = 0x40000000

_SOCK_FILTER = struct.Struct("<HBBI")  # u16 code, u8 jt, u8 jf, u32 k


def errno(value: int) -> int:
    """The return action that fails the syscall with `value` as its errno."""
    if not 0 < value <= RET_DATA_MASK:
        raise ValueError(f"errno {value} out of range")
    return RET_ERRNO | value


def arg_low(index: int) -> int:
    """Offset of the low 32 bits of syscall argument `index` (x86_64 is little-endian)."""
    return OFF_ARGS + 8 * index


def arg_high(index: int) -> int:
    """Offset of the high 32 bits of syscall argument `index`."""
    return OFF_ARGS + 8 * index + 4


@dataclass(frozen=True)
class Insn:
    """One sock_filter instruction; jt/jf are relative forward offsets."""

    code: int
    k: int = 0
    jt: int = 0
    jf: int = 0

    def encode(self) -> bytes:
        """The 8-byte struct sock_filter."""
        return _SOCK_FILTER.pack(self.code, self.jt, self.jf, self.k & 0xFFFFFFFF)


def load(offset: int) -> Insn:
    """A = the 32-bit word at `offset` of seccomp_data."""
    return Insn(LD_W_ABS, offset)


def ret(action: int) -> Insn:
    """Return `action` to the kernel."""
    return Insn(RET_K, action)


def encode(program: list[Insn]) -> bytes:
    """The byte string the kernel expects in sock_fprog.filter."""
    return b"".join(insn.encode() for insn in program)


def decode(program: bytes) -> list[Insn]:
    """Parse a sock_filter byte string back into instructions (for checks and emulation)."""
    if len(program) % _SOCK_FILTER.size:
        raise ValueError("a BPF program is a whole number of 8-byte instructions")
    return [Insn(code, k, jt, jf) for code, jt, jf, k in _SOCK_FILTER.iter_unpack(program)]
