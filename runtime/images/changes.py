"""Apply `docker import --change` instructions (CMD, ENTRYPOINT, ENV, ...) to an image config."""

import json
import shlex

from runtime.errors import InvalidSpec

SUPPORTED = ("CMD", "ENTRYPOINT", "ENV", "WORKDIR", "USER", "EXPOSE", "LABEL")


def _command(value: str, what: str) -> list[str]:
    """JSON form `["a","b"]` is taken as-is; shell form runs under /bin/sh -c as Docker does."""
    if value.startswith("["):
        try:
            argv = json.loads(value)
        except ValueError:
            argv = None
        if isinstance(argv, list) and all(isinstance(arg, str) for arg in argv):
            return argv
        raise InvalidSpec(f"{what}: {value!r} is not a JSON list of strings")
    return ["/bin/sh", "-c", value]


def _pairs(value: str, what: str, legacy_space: bool) -> list[tuple[str, str]]:
    """Parse `k=v k2="v 2"`; ENV also accepts the old `KEY value with spaces` form."""
    if legacy_space and "=" not in value.split(None, 1)[0]:
        key, _, rest = value.partition(" ")
        if not rest.strip():
            raise InvalidSpec(f"{what} needs a value: {value!r}")
        return [(key, rest.strip())]
    try:
        words = shlex.split(value)
    except ValueError as err:
        raise InvalidSpec(f"{what}: {err}") from None
    pairs = []
    for word in words:
        key, sep, val = word.partition("=")
        if not sep or not key:
            raise InvalidSpec(f"{what}: expected KEY=VALUE, got {word!r}")
        pairs.append((key, val))
    return pairs


def _port(word: str) -> str:
    number, _, proto = word.partition("/")
    proto = proto.lower() or "tcp"
    if not number.isdigit() or not 0 < int(number) < 65536 or proto not in ("tcp", "udp", "sctp"):
        raise InvalidSpec(f"EXPOSE: invalid port {word!r}")
    return f"{int(number)}/{proto}"


def apply_changes(config: dict, changes) -> None:
    """Apply each change line to `config` (the inner "config" object of an image config)."""
    for line in changes:
        if not isinstance(line, str) or not line.strip():
            raise InvalidSpec(f"invalid change {line!r}")
        instruction, _, value = line.strip().partition(" ")
        instruction, value = instruction.upper(), value.strip()
        if instruction not in SUPPORTED:
            raise InvalidSpec(
                f"change {line!r}: {instruction} is not supported (use {', '.join(SUPPORTED)})"
            )
        if not value:
            raise InvalidSpec(f"change {line!r} needs an argument")
        if instruction == "CMD":
            config["Cmd"] = _command(value, instruction)
        elif instruction == "ENTRYPOINT":
            config["Entrypoint"] = _command(value, instruction)
        elif instruction == "ENV":
            env = [item for item in config.get("Env") or []]
            for key, val in _pairs(value, instruction, legacy_space=True):
                env = [item for item in env if item.partition("=")[0] != key]
                env.append(f"{key}={val}")
            config["Env"] = env
        elif instruction == "WORKDIR":
            config["WorkingDir"] = value
        elif instruction == "USER":
            config["User"] = value
        elif instruction == "EXPOSE":
            ports = dict(config.get("ExposedPorts") or {})
            for word in value.split():
                ports[_port(word)] = {}
            config["ExposedPorts"] = ports
        elif instruction == "LABEL":
            labels = dict(config.get("Labels") or {})
            labels.update(_pairs(value, instruction, legacy_space=False))
            config["Labels"] = labels
