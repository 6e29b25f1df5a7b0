"""The operation container.update (`docker update`): new limits, live and for later starts.

The web has checked the limits (role maxima, team quotas) and stored them in the row's spec.
Here they go into the runtime's record of the container (so every later start uses them) and,
when it runs, into its cgroup at once. Registered as the `update` verb of container operations.
"""

import contextlib
import os
from pathlib import Path

from agent import containers_ops, lookup, observe
from runtime.spec import ContainerSpec, Limits


def update(rt, op, container):
    """Write the new limits into the record and, for a running container, its cgroup."""
    limits = op.params.get("limits") or {}
    parsed = Limits.from_dict(limits)
    parsed.validate()
    state = lookup.find(rt, container)
    if state is None:
        return {"updated": False}  # made later from the row's spec, which has them
    cid = state["id"]
    with rt.store.locked(cid):
        record = rt.store.read_record(cid)
        spec = {**record["spec"], "limits": limits}
        ContainerSpec.from_dict(spec)  # the record must stay a valid spec as a whole
        record["spec"] = spec
        rt.store.write_record(record)
        if state.get("status") in ("running", "paused"):
            _write_live(rt.cgroups, cid, parsed, rt.config.default_pids_limit)
    fresh = rt.state(cid)
    observe.record(container, fresh)
    return {"updated": True, **observe.snapshot(fresh)}


def _write_live(driver, cid: str, limits: Limits, default_pids: int) -> None:
    """The limits into the running container's cgroup, as the driver's create writes them."""
    if not getattr(driver, "_parents_ready", True):
        # Creates run in the fork server: this process's driver has not read the parents yet.
        driver._prepare_parents([])
        driver._parents_ready = True
    memsw = _v1_memsw(driver, cid)
    if memsw and limits.memory is not None:
        # cgroup v1 refuses a memory limit above memory+swap: raise that one first.
        swap = limits.memory_swap if limits.memory_swap not in (None, -1) else 2 * limits.memory
        with contextlib.suppress(OSError, ValueError):
            if int(Path(memsw).read_text().strip() or 0) < swap:
                Path(memsw).write_text(str(swap))
    pids = limits.pids if limits.pids is not None else default_pids
    driver._write_limits(cid, limits, pids)


def _v1_memsw(driver, cid: str) -> str:
    mount = (getattr(driver, "mounts", None) or {}).get("memory")
    if not mount:
        return ""
    path = f"{mount}/{driver.prefix}/{cid}/memory.memsw.limit_in_bytes"
    return path if os.path.exists(path) else ""


containers_ops.HANDLERS.setdefault("update", update)
