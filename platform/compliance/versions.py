"""Version ordering per ecosystem: Debian's (python-debian), Alpine's apk ordering and rpm's.

apk's rules (apk-tools' version.c, descended from Gentoo's): dot-separated numbers, then an
optional letter, then suffixes (_alpha < _beta < _pre < _rc < no suffix < _cvs < _svn < _git
< _hg < _p, each with an optional number), an optional ~commit hash, then -r<revision>.
Numbers compare as integers, except that a later component with a leading zero compares as a
decimal fraction (1.01 < 1.1). More components win (1.0.1 > 1.0z), a pre-release suffix loses
to none (1.0_rc1 < 1.0), a post-release suffix wins (1.0-r9 < 1.0_p1).
"""

import functools
import re

from debian.debian_support import Version as _DebianVersion
from debian.debian_support import version_compare as _debian_compare

_APK_RE = re.compile(
    r"^(?P<numbers>\d+(?:\.\d+)*)(?P<letter>[a-z]?)"
    r"(?P<suffixes>(?:_(?:alpha|beta|pre|rc|cvs|svn|git|hg|p)\d*)*)"
    r"(?:~(?P<hash>[0-9a-f]+))?(?:-r(?P<revision>\d+))?$"
)
_SUFFIX_RE = re.compile(r"_(alpha|beta|pre|rc|cvs|svn|git|hg|p)(\d*)")
# Rank relative to "no suffix" (0): negative ranks are pre-releases.
_SUFFIX_RANK = {
    "alpha": -4,
    "beta": -3,
    "pre": -2,
    "rc": -1,
    "cvs": 1,
    "svn": 2,
    "git": 3,
    "hg": 4,
    "p": 5,
}


class BadVersion(ValueError):
    """A version string the ecosystem's rules cannot read."""


def _cmp(a, b) -> int:
    return (a > b) - (a < b)


@functools.lru_cache(maxsize=65536)
def _apk_parse(version: str):
    match = _APK_RE.match(version)
    if not match:
        raise BadVersion(f"not an apk version: {version!r}")
    numbers = match["numbers"].split(".")
    suffixes = tuple(
        (_SUFFIX_RANK[name], int(num or 0)) for name, num in _SUFFIX_RE.findall(match["suffixes"])
    )
    return (
        numbers,
        match["letter"],
        suffixes,
        match["hash"] or "",
        int(match["revision"] or 0),
    )


def _apk_number(a: str, b: str, first: bool) -> int:
    if not first and (a.startswith("0") or b.startswith("0")):
        # A leading zero makes the component a fraction: compare as digits, trailing zeros off.
        return _cmp(a.rstrip("0"), b.rstrip("0"))
    return _cmp(int(a), int(b))


def apk_compare(a: str, b: str) -> int:
    """-1, 0 or 1 as apk orders versions a and b; BadVersion if either is unreadable."""
    na, la, sa, ha, ra = _apk_parse(a)
    nb, lb, sb, hb, rb = _apk_parse(b)
    for i, (x, y) in enumerate(zip(na, nb, strict=False)):
        c = _apk_number(x, y, i == 0)
        if c:
            return c
    if len(na) != len(nb):
        return _cmp(len(na), len(nb))
    c = _cmp(la, lb)
    if c:
        return c
    for x, y in zip(sa, sb, strict=False):
        c = _cmp(x, y)
        if c:
            return c
    if len(sa) != len(sb):
        # The longer one has an extra suffix: a pre-release suffix makes it older.
        extra = sa[len(sb)] if len(sa) > len(sb) else sb[len(sa)]
        older = extra[0] < 0
        longer_is_a = len(sa) > len(sb)
        return (-1 if older else 1) * (1 if longer_is_a else -1)
    c = _cmp(ha, hb)
    return c or _cmp(ra, rb)


def debian_compare(a: str, b: str) -> int:
    """-1, 0 or 1 as dpkg orders versions a and b (epochs, ~, revisions), by python-debian."""
    try:
        return _cmp(_debian_compare(a, b), 0)
    except ValueError as err:
        raise BadVersion(str(err)) from None


# python-debian's comparison costs 50-150 µs a pair here; matching 50 images against 10,000
# advisories makes tens of thousands. So each version is parsed once (by python-debian, which
# refuses what dpkg refuses) into a key holding dpkg's ordering, and keys compare as tuples.
# The tests check the keys against python-debian's own comparison.
_KEY_PARTS = 24  # (non-digit, number) pairs; longer versions fall back to python-debian
_END = ((0,), 0)


def _order(char: str) -> int:
    # dpkg: ~ sorts before everything, even the end; letters before other characters.
    if char == "~":
        return -1
    return ord(char) if char.isalpha() else ord(char) + 256


def _string_key(text: str):
    parts, i, n = [], 0, len(text)
    while i < n:
        start = i
        while i < n and not text[i].isdigit():
            i += 1
        letters = (*(_order(c) for c in text[start:i]), 0)
        start = i
        while i < n and text[i].isdigit():
            i += 1
        parts.append((letters, int(text[start:i] or 0)))
    return parts


@functools.lru_cache(maxsize=131072)
def debian_key(version: str):
    """A tuple ordering like dpkg's for `version`, or None when it is too long for one."""
    try:
        parsed = _DebianVersion(version)
    except ValueError as err:
        raise BadVersion(str(err)) from None
    parts = []
    for text in (parsed.upstream_version or "", parsed.debian_revision or ""):
        pieces = _string_key(text)
        if len(pieces) > _KEY_PARTS:
            return None
        parts.append(tuple(pieces + [_END] * (_KEY_PARTS - len(pieces))))
    return (int(parsed.epoch or 0), *parts)


def debian_fast_compare(a: str, b: str) -> int:
    """debian_compare through cached keys (python-debian parses; the order is dpkg's)."""
    ka, kb = debian_key(a), debian_key(b)
    if ka is None or kb is None:
        return debian_compare(a, b)
    return _cmp(ka, kb)


RPM_ECOSYSTEMS = ("Red Hat", "Rocky Linux", "AlmaLinux")


def _rpm_segments(text: str):
    """rpm's tokens of a version part: ("~"|"^"|"n"|"a", value), separators dropped."""
    for match in re.finditer(r"~|\^|[0-9]+|[A-Za-z]+", text):
        token = match.group()
        kind = token if token in "~^" else ("n" if token.isdigit() else "a")
        yield kind, token


def rpmvercmp(a: str, b: str) -> int:
    """rpm's rpmvercmp on one part (version or release): digit runs compare as numbers and
    beat letter runs, `~` sorts before anything (even the end), `^` after the end only."""
    if a == b:
        return 0
    left, right = list(_rpm_segments(a)), list(_rpm_segments(b))
    for i in range(max(len(left), len(right))):
        x = left[i] if i < len(left) else None
        y = right[i] if i < len(right) else None
        if x is None or y is None:
            other = y if x is None else x
            sign = 1 if x is None else -1  # the side that still has tokens is "other"
            if other[0] == "~":
                return sign  # a tilde sorts before the end
            return -sign  # anything else, a caret included, sorts after the end
        if x[0] != y[0]:
            for special in ("~", "^"):
                if special in (x[0], y[0]):
                    return -1 if x[0] == special else 1
            return 1 if x[0] == "n" else -1  # numbers are newer than letters
        if x[0] == "n":
            diff = _cmp(int(x[1]), int(y[1]))
        elif x[0] == "a":
            diff = _cmp(x[1], y[1])
        else:
            diff = 0
        if diff:
            return diff
    return 0


def _rpm_evr(version: str) -> tuple[int, str, str]:
    epoch, sep, rest = version.partition(":")
    if not sep:
        epoch, rest = "0", version
    if not epoch.isdigit():
        raise BadVersion(f"rpm version {version!r}: the epoch is not a number")
    ver, _, release = rest.rpartition("-") if "-" in rest else (rest, "", "")
    return int(epoch), ver, release


def rpm_compare(a: str, b: str) -> int:
    """rpm's order of [epoch:]version[-release]: epoch, then version, then release (a side
    without a release matches any release, as rpm compares a dependency)."""
    ea, va, ra = _rpm_evr(a)
    eb, vb, rb = _rpm_evr(b)
    if ea != eb:
        return _cmp(ea, eb)
    diff = rpmvercmp(va, vb)
    if diff or not (ra and rb):
        return diff
    return rpmvercmp(ra, rb)


def comparator(ecosystem: str):
    """The compare function of an OSV ecosystem ("Debian:12" -> dpkg order), or None."""
    base = ecosystem.split(":", 1)[0]
    if base in ("Debian", "Ubuntu"):
        return debian_fast_compare
    if base == "Alpine":
        return apk_compare
    if base in RPM_ECOSYSTEMS:
        return rpm_compare
    return None


def affected(version: str, ranges, versions, compare) -> tuple[bool, str]:
    """(whether `version` is affected, the fixed version of its range or "")."""
    if version in (versions or ()):
        return True, ""
    for introduced, fixed, last_affected in ranges or ():
        if introduced not in ("", "0") and compare(version, introduced) < 0:
            continue
        if fixed and compare(version, fixed) < 0:
            return True, fixed
        if last_affected and compare(version, last_affected) <= 0:
            return True, ""
        if not fixed and not last_affected:
            return True, ""
    return False, ""
