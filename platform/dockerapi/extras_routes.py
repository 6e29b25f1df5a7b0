"""Routes of the container extras, prunes, events and df (kept apart from router.py's table)."""

from dockerapi import archive, df, events, prune, rename, stats, update

_ID = r"(?P<ref>[^/]+)"

EXTRA_ROUTES = [
    ("GET", rf"containers/{_ID}/stats", stats.stats),
    ("GET", rf"containers/{_ID}/top", stats.top),
    ("POST", rf"containers/{_ID}/rename", rename.rename),
    ("POST", rf"containers/{_ID}/update", update.update),
    ("GET", rf"containers/{_ID}/archive", archive.archive_get),  # HEAD too (router.py)
    ("PUT", rf"containers/{_ID}/archive", archive.archive_put),
    ("GET", rf"containers/{_ID}/export", archive.export),
    ("GET", rf"containers/{_ID}/changes", archive.changes),
    ("POST", r"containers/prune", prune.containers),
    ("POST", r"networks/prune", prune.networks),
    ("POST", r"volumes/prune", prune.volumes),
    ("POST", r"build/prune", prune.build),
    ("GET", r"events", events.events),
    ("GET", r"system/df", df.df),
]
