"""Django's error views for requests that fail before any view runs (middleware, body parsing).

A dashboard form posted with a body over DATA_UPLOAD_MAX_MEMORY_SIZE fails while the CSRF
middleware reads it; Django calls that a SuspiciousOperation and answers 400 through
`handler400`. The client's mistake is the size, so it gets 413 with a message that says so:
the same status the REST API gives for the same body (api/errors.py).
"""

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http import HttpResponse, JsonResponse
from django.views.defaults import bad_request as django_bad_request

from api.errors import error_body


def _too_large_message() -> str:
    limit_mib = settings.DATA_UPLOAD_MAX_MEMORY_SIZE / (1024 * 1024)
    return f"the request body is too large (the limit for form fields is {limit_mib:g} MiB)"


def bad_request(request, exception=None):
    """400 for a malformed request; 413 when the reason is a body over the size limit."""
    if isinstance(exception, RequestDataTooBig):
        message = _too_large_message()
        if request.path.startswith("/api/"):
            return JsonResponse(error_body("too_large", message), status=413)
        return HttpResponse(
            f"<!doctype html><title>Request too large</title><h1>413 Request too large</h1>"
            f"<p>{message}.</p>",
            status=413,
        )
    return django_bad_request(request, exception)
