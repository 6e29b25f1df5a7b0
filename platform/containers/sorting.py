"""The natural sort key of a container name, kept in a column so the database pages in that order."""

import re

DIGITS = re.compile(r"(\d+)")
# The longest key: a name of 128 characters alternating text and digits, hex-encoded.
MAX_KEY_LENGTH = 1024


def natural_sort_key(name: str) -> str:
    """'web-10' -> a key that sorts after 'web-2' (numbers inside names compare as numbers,
    letters without case), in every database collation: the key is hexadecimal, whose digits
    and lowercase letters all collations order like bytes, so the database's index serves the
    dashboard's default order instead of every name being read and sorted in Python at each
    page load (issue 19)."""
    out = bytearray()
    for index, chunk in enumerate(DIGITS.split(name)):
        if index % 2:  # a run of digits: shorter numbers first, then digit by digit
            digits = chunk.lstrip("0") or "0"
            out += b"\x01" + bytes([len(digits)]) + digits.encode()
        else:  # text, ended by a byte below any character so that "a" sorts before "a-b"
            out += b"\x02" + chunk.lower().encode() + b"\x00"
    return out.hex()[:MAX_KEY_LENGTH]
