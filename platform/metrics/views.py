"""GET /metrics: Prometheus' text format, behind metrics.access."""

import os

from django.http import HttpResponse, HttpResponseNotAllowed, JsonResponse
from django.views.decorators.csrf import csrf_exempt
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


# Exempt from CSRF: no session is ever accepted here (bearer tokens or addresses only), so a
# forged cross-site request carries no credential; it is refused 401 like any anonymous one.
@csrf_exempt
def metrics(request):
    """Every Berth metric; 401/403 (audited) unless a metrics.read token or an allowed address."""
    verdict = access.check(request)
    if not verdict.allowed:
        response = JsonResponse({"detail": verdict.message}, status=verdict.status)
        if verdict.status == 401:
            response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    if request.method not in ("GET", "HEAD"):
        return HttpResponseNotAllowed(["GET", "HEAD"])
    body = generate_latest(_process_registry()) + generate_latest(_berth)
    return HttpResponse(body, content_type=CONTENT_TYPE_LATEST)
