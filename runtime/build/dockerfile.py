"""Parse a Dockerfile into instructions: continuations, comments, JSON and shell forms."""

import json
import re
from dataclasses import dataclass, field

from runtime.build.errors import DockerfileError

INSTRUCTIONS = (
    "FROM",
    "RUN",
    "COPY",
    "ADD",
    "ENV",
    "ARG",
    "WORKDIR",
    "USER",
    "EXPOSE",
    "CMD",
    "ENTRYPOINT",
    "LABEL",
    "VOLUME",
    "MAINTAINER",
    "STOPSIGNAL",
    "SHELL",
)
# Flags each instruction accepts (anything else is refused, not ignored).
FLAGS = {"COPY": ("chown", "chmod"), "ADD": ("chown", "chmod"), "FROM": ("platform",)}
_DIRECTIVE_RE = re.compile(r"^#\s*([a-zA-Z][a-zA-Z0-9]*)\s*=\s*(.+?)\s*$")
_FLAG_RE = re.compile(r"^--([a-z][a-z-]*)=(.*)$")


@dataclass
class Instruction:
    """One instruction: `args` is a list (JSON form or split words) or the raw shell string."""

    cmd: str
    line: int
    original: str
    args: list[str] | str
    json_form: bool = False
    flags: dict = field(default_factory=dict)

    def __str__(self) -> str:
        return self.original


def _logical_lines(text: str, escape: str):
    """Yield (first line number, joined text) for each instruction, skipping comments."""
    buf, start = "", None
    for number, raw in enumerate(text.splitlines(), 1):
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            # Comments and blank lines inside a continuation are dropped, as Docker does.
            continue
        if start is None:
            start = number
        body = raw.rstrip()
        if body.endswith(escape):
            # The escape and the newline vanish; the next line's text follows directly.
            buf += body[: -len(escape)]
            continue
        yield start, (buf + body).strip()
        buf, start = "", None
    if start is not None and buf.strip():
        yield start, buf.strip()


def _directives(text: str) -> dict:
    """Parser directives (`# escape=`) at the very top of the file."""
    found = {}
    for raw in text.splitlines():
        match = _DIRECTIVE_RE.match(raw.strip())
        if not match:
            break
        found[match.group(1).lower()] = match.group(2)
    return found


def _json_args(rest: str) -> list[str] | None:
    """The JSON array form, or None when `rest` is not a JSON array of strings (shell form)."""
    if not rest.startswith("["):
        return None
    try:
        value = json.loads(rest)
    except ValueError:
        return None
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return value
    return None


def _take_flags(cmd: str, rest: str, line: int) -> tuple[dict, str]:
    flags = {}
    while rest.startswith("--"):
        word, _, remainder = rest.partition(" ")
        match = _FLAG_RE.match(word)
        if not match:
            raise DockerfileError(f"line {line}: {cmd}: malformed flag {word!r}")
        name = match.group(1)
        if name not in FLAGS.get(cmd, ()):
            hint = " (multi-stage builds are not supported)" if name == "from" else ""
            raise DockerfileError(f"line {line}: {cmd} does not accept --{name}{hint}")
        flags[name] = match.group(2)
        rest = remainder.lstrip()
    return flags, rest


def parse(text: str) -> list[Instruction]:
    """Parse Dockerfile text; DockerfileError names the line of the first problem."""
    escape = _directives(text).get("escape", "\\")
    if escape not in ("\\", "`"):
        raise DockerfileError(f"invalid escape directive {escape!r} (use \\ or `)")
    out: list[Instruction] = []
    for line, logical in _logical_lines(text, escape):
        word, _, rest = logical.partition(" ")
        cmd = word.upper()
        rest = rest.strip()
        if cmd not in INSTRUCTIONS:
            raise DockerfileError(f"line {line}: unknown instruction {word!r}")
        if cmd == "SHELL":
            raise DockerfileError(f"line {line}: SHELL is not supported")
        flags, rest = _take_flags(cmd, rest, line)
        if not rest and cmd not in ("CMD", "ENTRYPOINT"):
            raise DockerfileError(f"line {line}: {cmd} needs an argument")
        json_args = (
            _json_args(rest)
            if cmd in ("RUN", "CMD", "ENTRYPOINT", "COPY", "ADD", "VOLUME")
            else None
        )
        args: list[str] | str = json_args if json_args is not None else rest
        out.append(Instruction(cmd, line, logical, args, json_args is not None, flags))
    if not any(ins.cmd == "FROM" for ins in out):
        raise DockerfileError("the Dockerfile has no FROM instruction")
    for ins in out:
        if ins.cmd == "FROM":
            break
        if ins.cmd != "ARG":
            raise DockerfileError(
                f"line {ins.line}: {ins.cmd} before FROM (only ARG may come first)"
            )
    if sum(ins.cmd == "FROM" for ins in out) > 1:
        second = [ins for ins in out if ins.cmd == "FROM"][1]
        raise DockerfileError(f"line {second.line}: multi-stage builds are not supported")
    return out


# --- words and variables ----------------------------------------------------------------------


def split_words(text: str, line: int) -> list[str]:
    """Split on whitespace, honouring quotes and backslash escapes (no variable expansion)."""
    words, cur, quote, i, have = [], [], None, 0, False
    while i < len(text):
        ch = text[i]
        if quote:
            if ch == quote:
                quote = None
            elif ch == "\\" and quote == '"' and i + 1 < len(text):
                i += 1
                cur.append(text[i])
            else:
                cur.append(ch)
        elif ch in "\"'":
            quote, have = ch, True
        elif ch == "\\" and i + 1 < len(text):
            i += 1
            cur.append(text[i])
            have = True
        elif ch.isspace():
            if cur or have:
                words.append("".join(cur))
            cur, have = [], False
        else:
            cur.append(ch)
            have = True
        i += 1
    if quote:
        raise DockerfileError(f"line {line}: unterminated quote")
    if cur or have:
        words.append("".join(cur))
    return words


_VAR_RE = re.compile(
    r"\\\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:[-+])([^}]*))?\}|\$([A-Za-z_][A-Za-z0-9_]*)"
)


def expand(text: str, env: dict, line: int, keep_escapes: bool = False) -> str:
    """Substitute $VAR, ${VAR}, ${VAR:-default} and ${VAR:+alt}; an escaped \\$ is a literal $.

    With `keep_escapes` the backslash stays, for text that split_words() unescapes later.
    """

    def sub(match):
        if match.group(0) == "\\$":
            return "\\$" if keep_escapes else "$"
        name = match.group(1) or match.group(4)
        value = env.get(name, "")
        op = match.group(2)
        if op == ":-":
            return value if value else match.group(3)
        if op == ":+":
            return match.group(3) if value else ""
        return value

    if "${" in text and text.count("${") > text.count("}"):
        raise DockerfileError(f"line {line}: unterminated ${{ in {text!r}")
    return _VAR_RE.sub(sub, text)


def key_values(text: str, line: int, cmd: str, legacy: bool) -> list[tuple[str, str]]:
    """ENV/LABEL/ARG pairs: "k=v k2='v 2'" or, for ENV's legacy form, "k value with spaces"."""
    words = split_words(text, line)
    if not words:
        raise DockerfileError(f"line {line}: {cmd} needs an argument")
    if legacy and "=" not in words[0]:
        name, _, value = text.strip().partition(" ")
        if not value.strip():
            raise DockerfileError(f"line {line}: {cmd} {name} needs a value")
        return [(name, " ".join(split_words(value, line)))]
    pairs = []
    for word in words:
        name, eq, value = word.partition("=")
        if not eq or not name:
            raise DockerfileError(f"line {line}: {cmd} expects key=value, got {word!r}")
        pairs.append((name, value))
    return pairs
