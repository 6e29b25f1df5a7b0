"""Compile a seccomp profile into a classic-BPF program for one architecture.

Program shape: check the architecture (kill on mismatch), refuse the x32 ABI, answer ENOSYS
for numbers above the table, then walk a balanced binary tree of `jge` jumps over ranges of
syscall numbers that share one outcome. About 2 instructions per range, depth log2(ranges):
the default profile needs ~9 comparisons per syscall instead of ~300 in a linear list.
"""

from __future__ import annotations

from dataclasses import dataclass

from runtime.seccomp import bpf
from runtime.seccomp.profile import EQ, MASKED_EQ, NE, Arg, Rule

_FAIL = -1  # placeholder jump target: "this rule does not match", resolved per rule


@dataclass(frozen=True)
class Conditional:
    """A syscall whose outcome depends on its arguments: first matching branch wins."""

    branches: tuple[tuple[tuple[Arg, ...], int], ...]
    fallback: int


Decision = int | Conditional


def resolve(
    rules: tuple[Rule, ...],
    capabilities: frozenset[str],
    arch: str,
    table: dict[str, int],
    default: int,
) -> dict[int, Decision]:
    """Syscall number -> outcome for a container holding `capabilities`."""
    by_name: dict[str, list[Rule]] = {}
    for rule in rules:
        if rule.applies(capabilities, arch):
            for name in rule.names:
                if name in table:
                    by_name.setdefault(name, []).append(rule)
    decisions: dict[int, Decision] = {}
    for name, applicable in by_name.items():
        plain = [r.action for r in applicable if not r.args]
        if bpf.RET_ALLOW in plain:
            decisions[table[name]] = bpf.RET_ALLOW
            continue
        fallback = plain[0] if plain else default
        branches = tuple((r.args, r.action) for r in applicable if r.args)
        decisions[table[name]] = Conditional(branches, fallback) if branches else fallback
    return decisions


def _arg_test(arg: Arg) -> list[bpf.Insn]:
    """Instructions that fall through when `arg` holds and jump to _FAIL when it does not."""
    if arg.op not in (EQ, NE, MASKED_EQ):
        raise ValueError(f"unsupported argument operator {arg.op!r}")
    if not 0 <= arg.index < 6:
        raise ValueError(f"syscall argument index {arg.index} out of range")
    mask = arg.mask if arg.bits == 64 else arg.mask & 0xFFFFFFFF
    value = arg.value & mask
    halves = [(bpf.arg_low(arg.index), mask & 0xFFFFFFFF, value & 0xFFFFFFFF)]
    if arg.bits == 64:
        halves.insert(0, (bpf.arg_high(arg.index), mask >> 32, value >> 32))
    code: list[bpf.Insn] = []
    if arg.op == NE:
        # Holds if any half differs: a differing high half skips the low-half test.
        for position, (offset, half_mask, half_value) in enumerate(halves):
            code.append(bpf.load(offset))
            if half_mask != 0xFFFFFFFF:
                code.append(bpf.Insn(bpf.ALU_AND_K, half_mask))
            last = position == len(halves) - 1
            code.append(bpf.Insn(bpf.JMP_JEQ_K, half_value, jt=_FAIL if last else 0, jf=0))
        return _link_ne(code)
    for offset, half_mask, half_value in halves:
        if half_mask == 0:
            if half_value:
                return [bpf.Insn(bpf.JMP_JA, _FAIL)]  # (x & 0) can never equal a non-zero value
            continue
        code.append(bpf.load(offset))
        if half_mask != 0xFFFFFFFF:
            code.append(bpf.Insn(bpf.ALU_AND_K, half_mask))
        code.append(bpf.Insn(bpf.JMP_JEQ_K, half_value, jt=0, jf=_FAIL))
    return code


def _link_ne(code: list[bpf.Insn]) -> list[bpf.Insn]:
    """Point the non-final equal-jumps of an NE test at the next half, their differ-jumps past the test."""
    linked = []
    for i, insn in enumerate(code):
        if insn.code == bpf.JMP_JEQ_K and insn.jt != _FAIL:
            # Equal high half: go on to the low half; differing: the test holds, skip to its end.
            insn = bpf.Insn(insn.code, insn.k, jt=0, jf=len(code) - i - 1)
        linked.append(insn)
    return linked


def _conditional(decision: Conditional) -> list[bpf.Insn]:
    """Branches in order, each ending in its return; a failed test jumps to the next branch."""
    code: list[bpf.Insn] = []
    for args, action in decision.branches:
        branch = [insn for arg in args for insn in _arg_test(arg)] + [bpf.ret(action)]
        end = len(branch)
        for i, insn in enumerate(branch):
            if _FAIL in (insn.jt, insn.jf) or (insn.code == bpf.JMP_JA and insn.k == _FAIL):
                distance = end - i - 1
                if distance > bpf.MAX_JUMP:
                    raise ValueError("argument test too long for an 8-bit jump")
                branch[i] = bpf.Insn(
                    insn.code,
                    distance if insn.code == bpf.JMP_JA else insn.k,
                    jt=distance if insn.jt == _FAIL else insn.jt,
                    jf=distance if insn.jf == _FAIL else insn.jf,
                )
        code += branch
    return code + [bpf.ret(decision.fallback)]


def _ranges(
    decisions: dict[int, Decision], highest: int, default: int
) -> list[tuple[int, Decision]]:
    """(first number, outcome) for runs of numbers 0..highest sharing one plain outcome."""
    runs: list[tuple[int, Decision]] = []
    for nr in range(highest + 1):
        outcome = decisions.get(nr, default)
        if runs and not isinstance(outcome, Conditional) and runs[-1][1] == outcome:
            continue
        runs.append((nr, outcome))
    return runs


def _tree(runs: list[tuple[int, Decision]]) -> list[bpf.Insn]:
    """A balanced search over `runs`; A holds the syscall number throughout."""
    if len(runs) == 1:
        outcome = runs[0][1]
        return _conditional(outcome) if isinstance(outcome, Conditional) else [bpf.ret(outcome)]
    middle = len(runs) // 2
    left, right = _tree(runs[:middle]), _tree(runs[middle:])
    pivot = runs[middle][0]
    if len(left) <= bpf.MAX_JUMP:
        return [bpf.Insn(bpf.JMP_JGE_K, pivot, jt=len(left), jf=0), *left, *right]
    # Too far for an 8-bit jump: hop over the left subtree with a 32-bit `ja`.
    return [
        bpf.Insn(bpf.JMP_JGE_K, pivot, jt=0, jf=1),
        bpf.Insn(bpf.JMP_JA, len(left)),
        *left,
        *right,
    ]


def compile_program(
    decisions: dict[int, Decision],
    *,
    audit_arch: int,
    highest: int,
    default: int,
    unknown: int,
) -> list[bpf.Insn]:
    """The whole filter: arch check, ABI check, range check, then the search tree."""
    header = [
        bpf.load(bpf.OFF_ARCH),
        bpf.Insn(bpf.JMP_JEQ_K, audit_arch, jt=1, jf=0),
        # Another ABI (i386 via int 0x80) would index a different syscall table: kill.
        bpf.ret(bpf.RET_KILL_PROCESS),
        bpf.load(bpf.OFF_NR),
        # x32 syscalls share AUDIT_ARCH_X86_64 and set bit 30 of the number.
        bpf.Insn(bpf.JMP_JGE_K, bpf.X32_SYSCALL_BIT, jt=0, jf=1),
        bpf.ret(default),
        bpf.Insn(bpf.JMP_JGT_K, highest, jt=0, jf=1),
        bpf.ret(unknown),
    ]
    program = header + _tree(_ranges(decisions, highest, default))
    if len(program) > bpf.MAX_INSNS:
        raise ValueError(f"seccomp program has {len(program)} instructions, limit {bpf.MAX_INSNS}")
    return program
