"""GET /metrics: Prometheus' text format, behind metrics.access."""

import os

from django.http import HttpResponse, JsonResponse
from django.views.decorators.http import require_GET
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    generate_latest,
    multiprocess,
)

from metrics import access
from metrics.collectors import BerthCollector

_berth = CollectorRegistry(auto_describe=False)
_berth.register(BerthCollector())


def _process_registry():
    """This process's counters, or all workers' when the server runs several (multiprocess)."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return registry
    return REGISTRY


@require_GET
def metrics(request):
    """Every Berth metric; 401/403 (audited) unless a metrics.read token or an allowed address."""
    verdict = access.check(request)
    if not verdict.allowed:
        response = JsonResponse({"detail": verdict.message}, status=verdict.status)
        if verdict.status == 401:
            response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    body = generate_latest(_process_registry()) + generate_latest(_berth)
    return HttpResponse(body, content_type=CONTENT_TYPE_LATEST)
