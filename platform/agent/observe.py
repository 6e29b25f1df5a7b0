"""Write what the runtime reports about a container into its row (the observed state)."""

from django.utils import timezone

from audit.services import record_event
from containers.models import Container

Observed = Container.Observed
# Runtime status -> observed state; the runtime's words are Docker's.
STATUS_MAP = {
    "created": Observed.CREATED,
    "running": Observed.RUNNING,
    "paused": Observed.PAUSED,
    "stopped": Observed.STOPPED,
    "exited": Observed.STOPPED,
    "restarting": Observed.RUNNING,  # between two runs of its restart policy
}


def snapshot(state: dict) -> dict:
    """The part of a runtime state dict worth keeping in an Operation's result."""
    keys = (
        "id",
        "name",
        "status",
        "pid",
        "exit_code",
        "oom_killed",
        "started_at",
        "finished_at",
        "restart_count",
    )
    return {k: state.get(k) for k in keys}


def record(container: Container, state: dict) -> None:
    """Store the runtime's view: runtime id, status, exit code, pid, network, timestamps."""
    status = STATUS_MAP.get(state.get("status"), Observed.ERROR)
    fields = {
        "runtime_id": state.get("id") or container.runtime_id,
        "observed_state": status,
        "exit_code": state.get("exit_code") if status == Observed.STOPPED else None,
        "pid": state.get("pid") if status in (Observed.RUNNING, Observed.PAUSED) else None,
        "network_info": state.get("network") or {},
        "observed_at": timezone.now(),
        "error": "OOM killed" if state.get("oom_killed") else "",
    }
    _update(container, fields)


def record_missing(container: Container, observed: str) -> None:
    """The host does not know the container: removed (as wanted) or a ghost (not as wanted)."""
    _update(container, {"observed_state": observed, "pid": None, "observed_at": timezone.now()})


def record_auto_removed(container: Container) -> None:
    """A container made with auto_remove is gone after it exited: removed, as wanted."""
    Container.objects.filter(pk=container.pk, host_id=container.host_id).update(
        desired_state=Container.Desired.REMOVED, updated_at=timezone.now()
    )
    record_missing(container, Observed.REMOVED)
    record_event(
        action="container.remove",
        outcome="allowed",
        reason="auto-remove: the container exited",
        object_type="container",
        object_id=container.pk,
        object_repr=container.name,
        summary={"host_id": container.host_id, "trigger": "auto_remove"},
    )


def record_error(container: Container, message: str) -> None:
    """The last operation on the container failed; keep the message next to it."""
    _update(container, {"error": message[:2000], "observed_at": timezone.now()})


def _update(container: Container, fields: dict) -> None:
    # Only the columns this agent owns change (a concurrent rename in the web is not undone).
    names = {f.name for f in Container._meta.concrete_fields}
    fields = {k: v for k, v in fields.items() if k in names}
    # Only while the row is still on this agent's host: a container that moved (live
    # migration) is the new host's to report, and an observation in flight must not undo it.
    Container.objects.filter(id=container.id, host_id=container.host_id).update(
        updated_at=timezone.now(), **fields
    )
    for key, value in fields.items():
        setattr(container, key, value)
