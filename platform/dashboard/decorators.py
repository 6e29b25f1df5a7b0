"""`@gated`: every dashboard view names the gate action it stands behind, and the gate decides it.

The URL guard test (tests/dashboard/test_guard.py) fails for a dashboard view without it.
"""

import functools

from django.contrib import messages
from django.contrib.auth.views import redirect_to_login
from django.http import HttpResponseNotAllowed
from django.shortcuts import redirect, render
from django.utils.http import url_has_allowed_host_and_scheme

from config.errors import PlatformError
from rbac import gate
from rbac.errors import AccessDenied

# Views that any signed-in user may open: they show only what the gate lets each user see.
SIGNED_IN = "signed-in"
# Views open to anyone (login).
PUBLIC = "public"
# What pages and their forms send; anything else (PUT, DELETE, OPTIONS, TRACE) is a 405.
PAGE_METHODS = ("GET", "HEAD", "POST")


def back_url(request, fallback: str | None = None) -> str:
    """The page the POST came from, when it is on this site; else `fallback` or this path."""
    referer = request.META.get("HTTP_REFERER", "")
    if referer and url_has_allowed_host_and_scheme(
        referer, {request.get_host()}, request.is_secure()
    ):
        return referer
    return fallback or request.path


def _summary(request) -> dict:
    return {"method": request.method, "path": request.path, "via": "dashboard"}


def _precheck(request, action: str) -> None:
    """May the user do `action` anywhere? Pages are audited; htmx polls only when refused."""
    decision = gate.decide(request.user, action)
    polling = (
        request.headers.get("HX-Request") == "true" or request.headers.get("X-Berth-Poll") == "1"
    )
    # A POST's allowed decision is recorded by the service that performs it (with its object
    # and Operation), so it is not written twice.
    if not decision.allowed or (request.method == "GET" and not polling):
        gate.record(decision, summary=_summary(request))
    if not decision.allowed:
        raise AccessDenied(decision)


def _error_page(request, err: PlatformError):
    if request.method == "POST" and err.status not in (403, 404):
        messages.error(request, err.message)
        return redirect(back_url(request))
    if request.headers.get("HX-Request") == "true":
        # htmx swaps only 2xx answers: show the message in place of the fragment.
        return render(request, "dashboard/_error_fragment.html", {"error": err})
    return render(request, "dashboard/error.html", {"error": err}, status=err.status)


def gated(action: str, *, login: bool = True):
    """Mark a view with its gate action, ask the gate first, and turn platform errors into pages.

    `action` is a permission code, decided by the gate for the user anywhere before a
    collection view runs (the view then narrows: restrict() for lists, the services' gate
    calls for changes); views of one object (a `pk` in the URL) decide on that object. SIGNED_IN
    / PUBLIC mark pages that show each user only what the gate allows. A refused GET answers
    with the error page and its status.
    """

    def wrap(view):
        @functools.wraps(view)
        def inner(request, *args, **kwargs):
            if request.method not in PAGE_METHODS:
                return HttpResponseNotAllowed(PAGE_METHODS)
            if login and not request.user.is_authenticated:
                return redirect_to_login(request.get_full_path())
            try:
                # Pages of one object decide on that object instead (another team's id
                # answers 404, like the API), so only collection pages ask "anywhere?".
                if action not in (SIGNED_IN, PUBLIC) and "pk" not in kwargs:
                    _precheck(request, action)
                return view(request, *args, **kwargs)
            except PlatformError as err:
                return _error_page(request, err)

        inner.berth_action = action
        return inner

    return wrap
