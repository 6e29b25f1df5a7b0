"""Recovery when a container's monitor is gone, and restart policies when the host boots.

The shim applies a container's restart policy while it lives. Two things it cannot handle:
its own death (SIGKILL, OOM, a crash) and a reboot (every shim gone, `run_root` emptied).
`recover()` handles both, from the host agent's start-up pass and from every later pass:

1. Reap: a container whose shim is gone is stopped for good. A process still running
   unmonitored is killed through its cgroup (its output had no reader left); the exit is
   recorded (137 when the runtime killed it, 255 when nobody saw how it ended, the shim's own
   record when it had written one), its address and port maps are released, and a line in
   its log says what happened. A `--rm` container is then removed.
2. Decide, per container, with the rules of `respawn.after_lost_monitor` (a monitor lost while
   the host ran) or `respawn.at_boot` (every container, after a boot).
3. Start what is due, in dependency order: a container that joins another's namespaces
   (`container:<id>`) starts after it. Each start is returned with its reason so the caller
   can record it. A start that fails is tried again by later passes, with a growing back-off,
   until one succeeds (`restart_due`).

A boot is told by the kernel's boot id, kept in `run_root/boot-id` (gone with `run_root`).
"""

from __future__ import annotations

import contextlib
import json
import signal
from pathlib import Path

from runtime.container import launch, respawn, restart_due
from runtime.container import status as sm
from runtime.container.fsutil import alive, read_json, write_json
from runtime.errors import BerthError, NotFound

BOOT_ID = Path("/proc/sys/kernel/random/boot_id")
KILLED_BY_RUNTIME, UNKNOWN_EXIT = 137, 255


def _kernel_boot_id() -> str:
    try:
        return BOOT_ID.read_text().strip()
    except OSError:
        return ""


def boot_marker(config) -> Path:
    """The file that says which boot this runtime's state has already been recovered for."""
    return config.run_root / "boot-id"


def is_boot(config) -> bool:
    """Whether the host booted (or `run_root` was emptied) since the last recovery."""
    try:
        return boot_marker(config).read_text().strip() != _kernel_boot_id()
    except OSError:
        return True


def mark_booted(config) -> None:
    """Remember that this boot has been recovered."""
    config.run_root.mkdir(parents=True, exist_ok=True)
    boot_marker(config).write_text(_kernel_boot_id() + "\n")


def maintenance_file(config) -> Path:
    """Present: no restart policy is applied at boot or after a lost monitor (maintenance)."""
    return config.root / "maintenance"


def _unfinished(state: dict, exit_info: dict | None) -> bool:
    """Started, with no exit recorded since: it was running (or starting) when its shim died."""
    started = state.get("started_at")
    return bool(started) and (exit_info is None or exit_info.get("finished_at", "") < started)


def _suspect(rt, cid: str) -> bool:
    """A cheap look without the lock: is the shim gone while something says it should run?"""
    paths = rt.store.paths(cid)
    # The monitor alive (start time checked) settles it, as observe()'s "monitored" would:
    # almost every container of a pass stops here, without its init's /proc read and the
    # FIFO's stat (issue 19: a pass at 1,000 containers).
    shim = read_json(paths.shim_file, {}) or {}
    if alive(shim.get("shim"), shim.get("shim_start")):
        return False
    obs = sm.observe(paths, lambda: False)
    if obs["monitored"]:
        return False
    if obs["process"] or paths.shim_file.exists():
        return True
    return _unfinished(rt.store.read_state(cid), read_json(paths.exit_file))


def reap(rt, cid: str) -> dict | None:
    """Stop a container whose shim is gone, record its exit; None if it needs nothing.

    Runs under the container's lock, so a start or create in flight (which holds it until the
    new shim is recorded) is never taken for a container that lost its monitor.
    """
    paths = rt.store.paths(cid)
    with rt.store.locked(cid):
        rec = rt.store.read_record(cid)
        if rt.store.abandoned(rec):
            return None  # a create that died half-way: rt.reconcile() clears it
        obs = sm.observe(paths, lambda: False)
        if obs["monitored"]:
            return None
        state = rt.store.read_state(cid)
        exit_info = read_json(paths.exit_file)
        unfinished = _unfinished(state, exit_info)
        if not (obs["process"] or paths.shim_file.exists() or unfinished):
            return None
        was_alive = obs["process"]
        with contextlib.suppress(OSError, BerthError):
            rt.cgroups.kill_all(cid, signal.SIGKILL)
        with contextlib.suppress(OSError, BerthError):
            rt.cgroups.thaw(cid)
        launch.wait_gone(obs["pid"], 5)
        rt._detach_network(cid)
        if unfinished:
            code = KILLED_BY_RUNTIME if was_alive else UNKNOWN_EXIT
            exit_info = {
                "exit_code": code,
                "finished_at": rt.store.now(),
                "restart_count": state.get("restart_count", 0),
            }
            write_json(paths.exit_file, exit_info)
            _note(rt, paths, code, was_alive)
        if not state.get("started_at"):
            state["started_at"] = rec["created"]
            rt.store.write_state(cid, state)
        paths.shim_file.unlink(missing_ok=True)
        paths.fifo.unlink(missing_ok=True)
        if not rec.get("auto_remove"):
            # Kept until a start succeeds: whoever reaped it (a pass, a verb), a failed start
            # is retried by later passes (runtime/container/restart_due.py).
            restart_due.mark(rt.config, cid)
        return {
            "id": cid,
            "name": rec["name"],
            "exit_code": exit_info.get("exit_code"),
            "was_running": unfinished,
            "killed": bool(was_alive),
            "auto_remove": bool(rec.get("auto_remove")),
        }


def _note(rt, paths, code: int, killed: bool) -> None:
    """Say in the container's log that it ran unmonitored: what it wrote since was not kept."""
    how = (
        "its process was still running and was stopped by the runtime"
        if killed
        else "its process had ended; how is unknown"
    )
    text = (
        f"[berth] the container's monitor (shim) was gone: output written since it died "
        f"was not logged; {how} (exit code {code}).\n"
    )
    line = json.dumps({"log": text, "stream": "stderr", "time": rt.store.now()}) + "\n"
    with contextlib.suppress(OSError), open(paths.log_file, "a") as log:
        log.write(line)


def reap_all(rt, errors: list | None = None) -> list[dict]:
    """Reap every container whose monitor is gone; returns what `reap` reported for each.

    One container that cannot be reaped never stops the others: its error goes to `errors`.
    """
    found = []
    for cid in rt.store.ids():
        try:
            if _suspect(rt, cid):
                done = reap(rt, cid)
                if done is not None:
                    found.append(done)
        except (NotFound, FileNotFoundError):
            continue  # removed meanwhile
        except (OSError, BerthError) as err:
            if errors is not None:
                errors.append(f"{cid[:12]}: {type(err).__name__}: {err}")
    return found


def due(rt, reaped: list[dict], *, boot: bool, skip=None) -> list[dict]:
    """The containers whose restart policy says start now, each with its reason and count.

    `skip(record, boot)`: True for a container that must not be started whatever its policy.
    """
    reaped_by_id = {r["id"]: r for r in reaped}
    owed: dict[str, int] = {}  # {id: restarts failed so far}; a fresh reap's count is 0
    if boot:
        candidates = rt.store.ids()
    else:
        # Also those reaped earlier whose restart is still owed (a start that failed, or a
        # reap done by a verb): restart_due keeps them until one start succeeds.
        owed = restart_due.owed(rt.config)
        candidates = list(reaped_by_id) + [c for c in owed if c not in reaped_by_id]
    found = []
    for cid in candidates:
        try:
            rec, obs = rt._observe(cid)
        except (NotFound, FileNotFoundError):
            restart_due.clear(rt.config, cid)
            continue
        if obs["process"] or rec.get("auto_remove") or (skip is not None and skip(rec, boot)):
            restart_due.clear(rt.config, cid)
            continue
        state = rt.store.read_state(cid)
        if not state.get("started_at"):
            restart_due.clear(rt.config, cid)
            continue  # created, never started: nothing to bring back
        exit_info = read_json(rt.store.paths(cid).exit_file, {}) or {}
        code = exit_info.get("exit_code")
        count = int(state.get("restart_count") or 0)
        # A stop or kill by a user leaves the stop flag (gone after a boot) and user_stopped.
        stopped = bool(state.get("user_stopped")) or rt.store.paths(cid).stop_flag.exists()
        spec = rec["spec"]
        policy = (spec.get("restart") or {}).get("name") or "no"
        if boot:
            was_running = reaped_by_id.get(cid, {}).get("was_running", False)
            go = respawn.at_boot(
                spec, was_running=was_running, code=code, count=count, user_stopped=stopped
            )
            trigger = "boot"
        else:
            go = respawn.after_lost_monitor(spec, code=code or 0, count=count, user_stopped=stopped)
            trigger = "monitor-lost"
        if not go:
            restart_due.clear(rt.config, cid)
            continue
        # on-failure counts its retries across both; the others count as Docker shows them.
        next_count = count + 1
        reason = _reason(trigger, policy, code, stopped)
        failed = 0 if cid in reaped_by_id else owed.get(cid, 0)
        if failed:
            reason += f" (try {failed + 1}: the last {failed} failed)"
        found.append(
            {
                "id": cid,
                "name": rec["name"],
                "policy": policy,
                "trigger": trigger,
                "exit_code": code,
                "restart_count": next_count,
                "reason": reason,
                "after": _dependencies(rt, spec),
                "failed_before": failed,
            }
        )
    return _ordered(found)


def _reason(trigger: str, policy: str, code, stopped: bool) -> str:
    if trigger == "boot":
        extra = " (even after a user's stop, as Docker does)" if stopped else ""
        if policy == "on-failure":
            extra = f" (it had failed with exit code {code} before the boot)"
        return f"host boot: restart policy {policy}{extra}"
    return f"monitor lost: restart policy {policy} after exit code {code}"


def _dependencies(rt, spec: dict) -> list[str]:
    """Ids of the containers whose namespaces this one joins (they must run first)."""
    refs = [v for v in (spec.get("namespaces") or {}).values() if str(v).startswith("container:")]
    mode = (spec.get("network") or {}).get("mode") or ""
    if mode.startswith("container:"):
        refs.append(mode)
    ids = []
    for ref in refs:
        with contextlib.suppress(BerthError):
            ids.append(rt.store.resolve(ref.partition(":")[2]))
    return ids


def _ordered(items: list[dict]) -> list[dict]:
    """Dependencies first (a stable topological order; a cycle keeps the remaining order)."""
    pending = list(items)
    ids = {i["id"] for i in items}
    placed: set[str] = set()
    out = []
    while pending:
        ready = [i for i in pending if all(d in placed or d not in ids for d in i["after"])]
        if not ready:
            ready = pending[:1]
        for item in ready:
            pending.remove(item)
            placed.add(item["id"])
            out.append(item)
    return out


def start_all(rt, items: list[dict]) -> list[dict]:
    """Start each due container in order; each item gains `started` and `error`."""
    for item in items:
        try:
            # Outside a boot a user's stop wins over the policy, also one that came after
            # due() read the state: the start checks again under the container's lock.
            state = rt.start(
                item["id"],
                restart_count=item["restart_count"],
                unless_user_stopped=item["trigger"] != "boot",
            )
            started = state.get("status") == "running"
            # Left stopped by the check above, not a start that failed (that raises).
            stopped = not started and rt.store.read_state(item["id"]).get("user_stopped")
            error = "a user stopped it meanwhile" if stopped else ""
            item.update(started=started, error=error, state=state)
        except Exception as err:  # one container's failure never keeps the others down
            message = str(err) if isinstance(err, BerthError) else f"{type(err).__name__}: {err}"
            item.update(started=False, error=message, state=None)
            with contextlib.suppress(OSError):
                wait = restart_due.failed(rt.config, item["id"], item.get("failed_before", 0))
                item["error"] += f" (tried again in {wait:g} s)"
    return items


def recover(rt, *, startup: bool = False, restarts: bool = True, skip=None) -> dict:
    """Reap containers whose monitor is gone and start those whose restart policy says so.

    `startup` (the agent's first pass): also clear half-made containers (`rt.reconcile()`),
    restore bridges, the nft table and port maps, and, when the host booted, apply the boot
    rules to every container. `restarts=False` (maintenance) reaps and records, starts
    nothing. `skip(record, boot)`: True for a container never to start (its row wants it removed,
    or it has none). Returns {"boot", "reaped", "restarts", "maintenance", "network_error",
    "errors"}.
    """
    boot = startup and is_boot(rt.config)
    errors: list[str] = []
    reaped = reap_all(rt, errors)
    for item in reaped:
        if item["auto_remove"]:  # run --rm: ended for good, so removed, as Docker does
            try:
                rt.delete(item["id"], force=True)
                item["removed"] = True
            except BerthError as err:
                errors.append(f"{item['id'][:12]}: could not remove (--rm): {err}")
    network_error = ""
    if startup:
        rt.reconcile()
        if rt.config.networks_dir.exists():
            try:
                rt.networks.restore()
            except Exception as err:  # containers without published ports still deserve theirs
                network_error = f"{type(err).__name__}: {err}"
    maintenance = not restarts or maintenance_file(rt.config).exists()
    items = [] if maintenance else start_all(rt, due(rt, reaped, boot=boot, skip=skip))
    if boot and not maintenance:
        # Under maintenance the boot stays unrecovered: the first start-up pass without it
        # applies the boot rules then.
        mark_booted(rt.config)
    return {
        "boot": boot,
        "reaped": reaped,
        "restarts": items,
        "maintenance": maintenance,
        "network_error": network_error,
        "errors": errors,
    }
