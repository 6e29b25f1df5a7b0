"""Give every request an id (X-Request-ID, or a new one) and bind the audit context."""

import re

from audit import context

_REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")


class RequestIdMiddleware:
    """Accept a sane X-Request-ID or make one; echo it in the response."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        # From META, not request.headers: that builds a map of every header (and, under
        # granian, of the whole process environment granian puts in each environ).
        given = request.META.get("HTTP_X_REQUEST_ID", "")
        request_id = given if _REQUEST_ID_RE.match(given) else context.new_request_id()
        request.request_id = request_id
        # REMOTE_ADDR only: a client-chosen X-Forwarded-For would let anyone forge the source.
        with context.bind(request_id=request_id, source_ip=request.META.get("REMOTE_ADDR") or None):
            response = self.get_response(request)
        response["X-Request-ID"] = request_id
        return response
