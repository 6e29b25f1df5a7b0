"""Count every HTTP request by the URL pattern that answered it, its method and status."""

import time

from metrics.instruments import LATENCY, REQUESTS, method_label

UNMATCHED = "<unmatched>"


def route_of(request) -> str:
    """The route pattern that resolved the request (e.g. api/v1/^containers/(?P<pk>[^/.]+)/$).

    Raw paths carry ids and would make a new series per object; patterns are a fixed set.
    """
    match = getattr(request, "resolver_match", None)
    if match is None:
        return UNMATCHED
    return match.route or match.view_name or UNMATCHED


class RequestMetricsMiddleware:
    """Outermost middleware: times the whole answer, including the other middleware."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        start = time.perf_counter()
        response = self.get_response(request)
        route, method = route_of(request), method_label(request.method)
        LATENCY.labels(route, method).observe(time.perf_counter() - start)
        REQUESTS.labels(route, method, str(response.status_code)).inc()
        return response
