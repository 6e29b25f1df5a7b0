"""The metrics a web process counts itself: HTTP requests and gate decisions.

With several workers (the production server), PROMETHEUS_MULTIPROC_DIR names a directory where
each process keeps its samples in a memory-mapped file; the scrape adds them up
(views.registry). Set it before the server starts: prometheus_client reads it at import.
"""

from prometheus_client import Counter, Histogram

# Latency buckets for a web request, in seconds.
_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.5, 1.0, 2.5, 5.0, 10.0)

REQUESTS = Counter(
    "berth_http_requests_total",
    "HTTP requests answered, by route pattern (not the raw path), method and status.",
    ["route", "method", "status"],
)
LATENCY = Histogram(
    "berth_http_request_duration_seconds",
    "Time to answer an HTTP request, by route pattern and method.",
    ["route", "method"],
    buckets=_BUCKETS,
)
GATE_DECISIONS = Counter(
    "berth_gate_decisions_total",
    "Authorization decisions recorded by the gate, by outcome and action.",
    ["outcome", "action"],
)

# The methods a route label may carry; anything else is counted as OTHER (bounded labels).
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def method_label(method: str) -> str:
    """The request method, or OTHER for anything a client made up."""
    method = (method or "").upper()
    return method if method in _METHODS else "OTHER"


def count_audit_event(sender, action, outcome, **kwargs):
    """audit.signals.recorded: one gate decision (allowed, denied or failed)."""
    GATE_DECISIONS.labels(outcome or "unknown", action or "unknown").inc()
