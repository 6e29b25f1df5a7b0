"""Repairs for what a create killed half-way leaves in the runtime's store.

The runtime reserves a container's name before it writes the container's record; an agent
killed by SIGKILL between the two leaves a reservation that no container owns, and every later
create under that name is refused as a conflict. Until the runtime's own reconcile() frees such
names, the agent frees one it is about to use itself, and only when the owner has no record.
"""

import logging
import shutil

from runtime.errors import NotFound

log = logging.getLogger(__name__)


def release_stale_name(rt, name: str) -> bool:
    """Free `name` if its owner never got a record; True when something was freed."""
    store = getattr(rt, "store", None)
    names_dir = getattr(store, "names_dir", None)
    if names_dir is None or not name:
        return False
    try:
        rt.state(name)
        return False  # a real container holds the name: a true conflict
    except NotFound:
        pass
    try:
        owner = (names_dir / name).read_text().strip()
    except OSError:
        return False
    if not owner or "/" in owner or (rt.config.containers_dir / owner / "config.json").exists():
        return False
    log.warning(
        "freeing container name %s held by %s, a create that never finished", name, owner[:12]
    )
    shutil.rmtree(rt.config.containers_dir / owner, ignore_errors=True)
    shutil.rmtree(rt.config.run_containers_dir / owner, ignore_errors=True)
    store.release_name(name, owner)
    return True
