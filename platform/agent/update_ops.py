"""The operation container.update (`docker update`): new limits, live and for later starts.

The web has checked the limits (role maxima, team quotas) and stored them in the row's spec.
Here they go into the runtime's record of the container (so every later start uses them) and,
when it runs, into its cgroup at once. Registered as the `update` verb of container operations.
"""

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
            pids = parsed.pids if parsed.pids is not None else rt.config.default_pids_limit
            rt.cgroups._write_limits(cid, parsed, pids)
    fresh = rt.state(cid)
    observe.record(container, fresh)
    return {"updated": True, **observe.snapshot(fresh)}


containers_ops.HANDLERS.setdefault("update", update)
