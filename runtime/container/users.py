"""Resolve `user` ("name", "uid", "uid:gid", "name:group") against the container's own files."""

from __future__ import annotations

from runtime.errors import InvalidSpec


def _entries(path: str) -> list[list[str]]:
    try:
        with open(path) as f:
            return [
                line.rstrip("\n").split(":")
                for line in f
                if line.strip() and not line.startswith("#")
            ]
    except OSError:
        return []


def resolve_user(user: str | None, root: str = "/") -> tuple[int, int, list[int], str]:
    """Return (uid, gid, supplementary gids, home) read from root's /etc/passwd and /etc/group."""
    user = user or "0"
    name, _, group = user.partition(":")
    passwd = _entries(root.rstrip("/") + "/etc/passwd")
    groups = _entries(root.rstrip("/") + "/etc/group")
    entry = next((e for e in passwd if len(e) >= 4 and (e[0] == name or e[2] == name)), None)
    if entry is not None:
        uid, gid, home, login = (
            int(entry[2]),
            int(entry[3]),
            entry[5] if len(entry) > 5 else "/",
            entry[0],
        )
    elif name.isdigit():
        uid, gid, home, login = int(name), 0, "/", None
    else:
        raise InvalidSpec(f"unable to find user {name}: no matching entries in passwd file")
    if group:
        if group.isdigit():
            gid = int(group)
        else:
            match = next((g for g in groups if len(g) >= 3 and g[0] == group), None)
            if match is None:
                raise InvalidSpec(
                    f"unable to find group {group}: no matching entries in group file"
                )
            gid = int(match[2])
    extra = sorted(
        {
            int(g[2])
            for g in groups
            if login and len(g) >= 4 and login in g[3].split(",") and g[2].isdigit()
        }
        - {gid}
    )
    return uid, gid, extra, home or "/"
