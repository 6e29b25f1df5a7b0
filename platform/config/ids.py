"""Ids typed by clients: only ASCII digits that fit a database integer are ids."""

MAX_DIGITS = 18  # below 2**63: PostgreSQL's bigint, SQLite's integer


def is_id(value) -> bool:
    """Whether `value` reads as a database id ("²" and "١٢" pass str.isdigit(), not this)."""
    text = str(value)
    return text.isascii() and text.isdigit() and 0 < len(text) <= MAX_DIGITS


def as_id(value) -> int | None:
    """`value` as an id, or None when it is not one."""
    return int(str(value)) if is_id(value) else None
