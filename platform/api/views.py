"""The API's answer for unknown paths: the one error format, not an HTML page."""

from django.http import JsonResponse

from api.errors import error_body


def api_not_found(request, *args, **kwargs):
    """404 for any path under /api/v1/ that no viewset serves (no object, so no gate)."""
    return JsonResponse(error_body("not_found", f"no API endpoint {request.path}"), status=404)
