"""What an uploaded tar may hold (docker cp into a container); no Django, no runtime imports.

The web checks an upload with these rules before anything is sent to the host, and the host
agent checks it again before it writes (agent/files_ops.py).
"""

from pathlib import PurePosixPath


class TarRefused(ValueError):
    """An entry of the archive must not be extracted; the message names it."""


def check_members(members) -> None:
    """Refuse `..` in names, device nodes, unknown types, and hard links to anything but an
    earlier entry of the same archive."""
    names: dict[str, bool] = {}  # earlier entries: whether each is a regular file
    for member in members:
        name = member.name
        if ".." in PurePosixPath(name).parts:
            raise TarRefused(f"archive entry {name!r} leaves the target directory (..)")
        if member.ischr() or member.isblk():
            raise TarRefused(f"archive entry {name!r} is a device node")
        known = member.isfile() or member.isdir() or member.issym() or member.islnk()
        if not known and not member.isfifo():
            raise TarRefused(f"archive entry {name!r} has an unsupported type")
        if member.islnk():
            target = member.linkname.lstrip("/")
            while target.startswith("./"):
                target = target[2:]
            if ".." in PurePosixPath(target).parts or target.rstrip("/") not in names:
                raise TarRefused(f"hard link {name!r} points outside the archive")
            if not names[target.rstrip("/")]:
                raise TarRefused(f"hard link {name!r} points to an entry that is not a file")
        clean = name.lstrip("/")
        while clean.startswith("./"):
            clean = clean[2:]
        names[clean.rstrip("/") or "."] = member.isfile()
