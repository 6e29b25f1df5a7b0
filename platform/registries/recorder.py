"""Agent side: collect progress events and log text in memory, write them to the row twice a second.

Pull threads report from many threads at once; one flusher thread owns the database writes (and
its own connection, closed at the end), so a download never waits for the database.
"""

import threading

from django.db import close_old_connections, connection

from registries.models import OperationProgress

FLUSH_SECONDS = 0.5
MAX_LOG = 512 * 1024  # keep the tail: a runaway RUN must not fill the database


class ProgressRecorder:
    """Context manager: `progress(event)` for runtime pull/push, `log(text)` for builds."""

    def __init__(self, operation_id: int):
        self.operation_id = operation_id
        self.layers: dict[str, dict] = {}
        self.text: list[str] = []
        self.size = 0
        self.lock = threading.Lock()
        self.dirty = threading.Event()
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, name="berth-progress", daemon=True)

    def progress(self, event: dict) -> None:
        """One runtime progress event {status, id, current, total}."""
        key = str(event.get("id") or "")
        with self.lock:
            entry = self.layers.setdefault(key, {"status": "", "current": 0, "total": 0})
            entry["status"] = event.get("status", entry["status"])
            for name in ("current", "total"):
                if isinstance(event.get(name), int):
                    entry[name] = event[name]
        self.dirty.set()

    def log(self, text: str) -> None:
        """Build output."""
        with self.lock:
            self.text.append(text)
            self.size += len(text)
        self.dirty.set()

    def _snapshot(self):
        with self.lock:
            log = "".join(self.text)
            if len(log) > MAX_LOG:
                log = log[-MAX_LOG:]
                self.text, self.size = [log], len(log)
            return {k: dict(v) for k, v in self.layers.items()}, log

    def flush(self) -> None:
        """Write the current state (in the calling thread)."""
        self.dirty.clear()
        layers, log = self._snapshot()
        OperationProgress.objects.update_or_create(
            operation_id=self.operation_id, defaults={"layers": layers, "log": log}
        )

    def _run(self):
        try:
            while not self.stopping.is_set():
                if self.dirty.wait(FLUSH_SECONDS) and not self.stopping.is_set():
                    try:
                        self.flush()
                    except Exception:  # a busy database: the next tick writes it
                        close_old_connections()
                self.stopping.wait(FLUSH_SECONDS)
        finally:
            connection.close()

    def __enter__(self):
        self.flush()
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stopping.set()
        self.thread.join(10)
        self.flush()
        return False
