"""Reading operation progress for the API and where saved archives live (web side)."""

from pathlib import Path

from django.conf import settings

from registries.models import OperationProgress

# Runtime progress statuses after which a layer needs nothing more.
DONE_STATUSES = frozenset(
    {"Download complete", "Already exists", "Pull complete", "Pushed", "Layer already exists"}
)


def exports_dir() -> Path:
    """Where the agent writes `docker save` archives, one per operation id."""
    return Path(settings.DATA_DIR) / "exports"


def progress_body(op, since: int = 0) -> dict:
    """State, layers as a list (with percent) and the log from byte offset `since`."""
    row = OperationProgress.objects.filter(operation=op).first()
    layers = []
    log = status = ""
    if row is not None:
        for layer_id, info in (row.layers or {}).items():
            if not layer_id.startswith("sha256:"):
                # Events about the whole image (Resolving, Extracting, Pull complete).
                status = info.get("status") or status
                continue
            total, current = info.get("total") or 0, info.get("current") or 0
            if info.get("status") in DONE_STATUSES:
                percent = 100.0
            else:
                percent = round(100 * current / total, 1) if total else None
            layers.append({"id": layer_id, **info, "percent": percent})
        log = row.log or ""
    return {
        "operation": op.pk,
        "kind": op.kind,
        "state": op.state,
        "status": status,
        "error": op.error,
        "layers": layers,
        "log": log[since:],
        "next": len(log),
        "result": op.result,
    }
