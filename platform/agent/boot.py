"""Boot recovery and lost monitors on this host: run the runtime's recovery, record each step.

The runtime (`runtime/container/boot.py`) reaps containers whose shim is gone and starts the
ones whose restart policy says so (at boot: Docker's daemon-start rules). This module decides
what the runtime must never start (a container whose row wants it removed, or that has no
row), writes the new observed state into each row, and records every reap and every restart
in the audit log with its reason. See docs/agent.md, "Boot and lost monitors".

Maintenance: `BERTH_AGENT_RESTART_POLICIES=0` in the agent's environment, or the file
`<BERTH_ROOT>/maintenance`, keeps every container stopped (reaps are still recorded).
"""

import logging
import os

from django.db.models import Q

from agent import lookup, observe
from audit.services import record_event
from containers.models import Container
from runtime.container import boot as runtime_boot
from runtime.errors import BerthError

log = logging.getLogger(__name__)
Desired = Container.Desired
ENV_SWITCH = "BERTH_AGENT_RESTART_POLICIES"


def restarts_enabled() -> bool:
    """False when the operator turned restart policies off for maintenance (environment)."""
    return os.environ.get(ENV_SWITCH, "1").strip().lower() not in ("0", "false", "no", "off")


class _Rows:
    """This host's rows by label, read once and only when a decision needs them."""

    def __init__(self, host_name: str):
        self.host_name = host_name
        self._by_label = None

    def by_label(self) -> dict:
        """{label value: Container} for every row of this host."""
        if self._by_label is None:
            rows = Container.objects.filter(host__name=self.host_name).select_related("host")
            self._by_label = {lookup.label_value(c): c for c in rows}
        return self._by_label

    def of(self, rec_or_state: dict):
        """The row a runtime record or state belongs to (by our label), or None."""
        labels = (rec_or_state.get("spec") or {}).get("labels") or {}
        value = labels.get(lookup.LABEL)
        return self.by_label().get(value) if value else None

    def never_start(self, rec: dict, boot: bool = False) -> bool:
        """A labelled container of this host without a row, or whose row wants it removed;
        outside a boot also one whose row wants it stopped (a stop asked while its monitor
        died: the user's stop wins, as the shim's own restart would honour it)."""
        labels = (rec.get("spec") or {}).get("labels") or {}
        value = labels.get(lookup.LABEL)
        if not value:
            return False  # not the platform's: the runtime's own rules apply
        if not value.startswith(f"{self.host_name}/"):
            return True  # another host's label in this root: never ours to start
        row = self.by_label().get(value)
        if row is None or row.desired_state == Desired.REMOVED:
            return True
        return not boot and row.desired_state in (Desired.CREATED, Desired.STOPPED)


def recover(host_name: str, rt, *, startup: bool) -> dict:
    """Reap lost monitors, apply restart policies (at boot: all of them), record each step."""
    rows = _Rows(host_name)
    if getattr(rt, "store", None) is None:
        # A runtime without records on disk (the agent tests' in-memory stand-in) has no
        # shims to lose: only its own start-up repair.
        if startup:
            rt.reconcile()
        return {"boot": False, "reaped": 0, "restarted": 0, "restart_failed": 0}
    result = runtime_boot.recover(
        rt, startup=startup, restarts=restarts_enabled(), skip=rows.never_start
    )
    if result["network_error"]:
        log.error("restoring the networks failed: %s", result["network_error"])
    for error in result["errors"]:
        log.error("could not reap a container whose monitor is gone: %s", error)
    if result["boot"]:
        log.warning(
            "host %s booted: %d containers reaped, %d started by their restart policy%s",
            host_name,
            len(result["reaped"]),
            sum(1 for r in result["restarts"] if r.get("started")),
            " (maintenance: restart policies off)" if result["maintenance"] else "",
        )
    for item in result["reaped"]:
        _record_reap(host_name, rt, rows, item, boot=result["boot"])
    for item in result["restarts"]:
        _record_restart(host_name, rt, rows, item)
    return {
        "boot": result["boot"],
        "reaped": len(result["reaped"]),
        "restarted": sum(1 for r in result["restarts"] if r.get("started")),
        "restart_failed": sum(1 for r in result["restarts"] if not r.get("started")),
    }


def _state(rt, cid: str) -> dict | None:
    try:
        return rt.state(cid)
    except BerthError:
        return None


def _row_for(rt, rows: _Rows, cid: str):
    state = _state(rt, cid)
    return (rows.of(state) if state else None), state


def _record_reap(host_name, rt, rows, item, *, boot: bool) -> None:
    container, state = _row_for(rt, rows, item["id"])
    if boot and not item["killed"]:
        reason = "the host went down while it ran (boot recovery)"
    elif item["killed"]:
        reason = "its monitor (shim) was gone while it ran: stopped by the runtime"
    else:
        reason = "its monitor (shim) and its process were gone"
    log.warning("container %s on host %s: %s", item["name"], host_name, reason)
    if container is not None and state is not None:
        observe.record(container, state)
    _audit(
        "container.monitor_lost",
        container,
        item,
        host_name,
        reason=reason,
        summary={"exit_code": item["exit_code"], "killed": item["killed"], "boot": boot},
    )


def _record_restart(host_name, rt, rows, item) -> None:
    container, state = _row_for(rt, rows, item["id"])
    started = bool(item.get("started"))
    if started:
        log.info("container %s restarted on host %s: %s", item["name"], host_name, item["reason"])
    else:
        log.warning(
            "container %s on host %s was not restarted (%s): %s",
            item["name"],
            host_name,
            item["reason"],
            item["error"],
        )
    if container is not None:
        if state is not None:
            observe.record(container, state)
        if (
            started
            and item["trigger"] == "boot"
            and container.desired_state in (Desired.CREATED, Desired.STOPPED)
        ):
            # Docker's rule (`always` starts at boot even after a stop) made it run: the row
            # says so rather than wanting what the host no longer has. Only at a boot: after
            # a lost monitor a row that wants it stopped keeps it down (never_start).
            Container.objects.filter(
                Q(desired_state=Desired.CREATED) | Q(desired_state=Desired.STOPPED),
                id=container.id,
            ).update(desired_state=Desired.RUNNING)
    _audit(
        "container.auto_restart",
        container,
        item,
        host_name,
        reason=item["reason"] if started else f"{item['reason']}; failed: {item['error']}",
        failed=not started,
        summary={
            "trigger": item["trigger"],
            "policy": item["policy"],
            "exit_code": item["exit_code"],
            "restart_count": item["restart_count"],
        },
    )


def _audit(action, container, item, host_name, *, reason, summary, failed=False) -> None:
    try:
        record_event(
            action=action,
            outcome="failed" if failed else "allowed",
            reason=reason,
            object_type="container",
            object_id=container.pk if container is not None else item["id"],
            object_repr=item["name"],
            summary=dict(summary, host=host_name, runtime_id=item["id"]),
        )
    except Exception:  # the container's state is what matters; the agent log keeps the step
        log.exception("could not record %s of %s in the audit log", action, item["name"])
