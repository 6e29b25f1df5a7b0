"""Log in and out: Django's auth with CSRF, plus a lockout after repeated failures."""

from django.contrib.auth import authenticate, login, logout
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_protect
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_http_methods, require_POST

from dashboard import lockout
from dashboard.audit_log import record_login
from dashboard.decorators import PUBLIC, gated
from directory.views_sso import end_session_url

LOCKED_MESSAGE = "Too many failed logins. Try again in a few minutes."
FAILED_MESSAGE = "Wrong username or password."


def client_address(request) -> str | None:
    """The peer address that the server saw (a proxy in front must set REMOTE_ADDR right)."""
    return request.META.get("REMOTE_ADDR") or None


def _safe_next(request, candidate: str) -> str:
    if candidate and url_has_allowed_host_and_scheme(
        candidate, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return candidate
    return reverse("dashboard:home")


@gated(PUBLIC, login=False)
@sensitive_post_parameters("password")
@csrf_protect
@never_cache
@require_http_methods(["GET", "POST"])
def login_view(request):
    """Show the login form; on POST check the lockout first, then the password."""
    next_url = request.POST.get("next") or request.GET.get("next", "")
    if request.method == "GET":
        if request.user.is_authenticated:
            return redirect(_safe_next(request, next_url))
        return render(request, "dashboard/login.html", {"next": next_url})

    username = request.POST.get("username", "")
    password = request.POST.get("password", "")
    address = client_address(request)
    context = {"next": next_url, "username": username}
    # A locked account is refused before the password is even checked, so guessing stops
    # teaching the attacker anything.
    if lockout.is_locked(username, address):
        record_login(request, username, outcome="denied", reason="locked out")
        return render(
            request, "dashboard/login.html", {**context, "error": LOCKED_MESSAGE}, status=429
        )
    user = authenticate(request, username=username, password=password)
    if user is None:
        lockout.record_failure(username, address)
        record_login(request, username, outcome="denied", reason="bad credentials")
        # A directory refusal (directory/ldap.py) says why: unreachable, disabled, no group.
        error = getattr(request, "berth_login_error", None) or FAILED_MESSAGE
        return render(request, "dashboard/login.html", {**context, "error": error}, status=401)
    # login() rotates the session key and the CSRF token (no session fixation).
    login(request, user)
    lockout.clear(username)
    record_login(request, username, outcome="allowed", reason="password", user=user)
    return redirect(_safe_next(request, next_url))


@gated(PUBLIC, login=False)
@require_POST
def logout_view(request):
    """Log out (POST only, so a link elsewhere cannot log anyone out); an OIDC session is ended
    at the provider too (directory/views_sso.py)."""
    provider_logout = end_session_url(request)
    logout(request)
    return redirect(provider_logout or "dashboard:login")
