"""Checks of the values in a Docker request body: each wrong type answers 400 with the field."""

from dockerapi.errors import bad_request


def empty(value) -> bool:
    """What a client sends for an option it does not set."""
    return value in (None, "", 0, False, [], {}) or value == [0, 0]


def unknown(data: dict, known: set, where: str) -> None:
    extra = sorted(set(data) - known)
    if extra:
        raise bad_request(f"unknown field {extra[0]!r} in {where}")


def strings(value, what: str) -> list[str]:
    """A list of strings (a single string is one item, as Docker accepts for Cmd)."""
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise bad_request(f"{what} must be a list of strings")
    return value


def as_dict(value, what: str) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise bad_request(f"{what} must be an object")
    return value


def integer(value, what: str) -> int:
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int):
        raise bad_request(f"{what} must be an integer")
    return value
