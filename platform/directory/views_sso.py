"""The OIDC sign-in pages: start (redirect to the provider), callback, logout."""

from urllib.parse import urlencode

import requests
from authlib.integrations.base_client import OAuthError
from django.contrib import messages
from django.contrib.auth import login, logout
from django.http import HttpResponseRedirect
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST
from joserfc.errors import JoseError

from dashboard.decorators import PUBLIC, gated
from directory import oidc
from directory.models import OIDC
from directory.refusal import Refused, record_sign_in, refuse
from directory.sync import sign_in

NEXT_KEY = "berth_sso_next"
ID_TOKEN_KEY = "berth_sso_id_token"
SOURCE_KEY = "berth_sso_source"
MODEL_BACKEND = "django.contrib.auth.backends.ModelBackend"
UNAVAILABLE = "Single sign-on is not available right now; use a local account or try again later."


def _refused(request, refusal: Refused, username: str = ""):
    refuse(request, source=OIDC, username=username, refusal=refusal)
    return render(
        request, "dashboard/login.html", {"error": refusal.message, "sso": True}, status=403
    )


def _redirect_uri(request, conf) -> str:
    return conf.get("REDIRECT_URI") or request.build_absolute_uri(
        reverse("directory:oidc_callback")
    )


@gated(PUBLIC, login=False)
@never_cache
@require_GET
def oidc_login(request):
    """Start the authorization code flow: state, nonce and the PKCE verifier go to the session."""
    conf = oidc.config()
    if not conf:
        return _refused(
            request, Refused("Single sign-on is not configured.", "oidc: not configured")
        )
    next_url = request.GET.get("next", "")
    if next_url and url_has_allowed_host_and_scheme(
        next_url, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        request.session[NEXT_KEY] = next_url
    try:
        # Authlib makes the state, the nonce and the PKCE verifier and keeps them in the session.
        return oidc.client(conf).authorize_redirect(request, _redirect_uri(request, conf))
    except (requests.RequestException, OAuthError, ValueError, KeyError) as exc:
        return _refused(
            request, Refused(UNAVAILABLE, f"oidc: provider unreachable ({type(exc).__name__})")
        )


@gated(PUBLIC, login=False)
@never_cache
@require_GET
def oidc_callback(request):
    """The provider's answer: check state, exchange the code (with the verifier), check the ID
    token, apply the group mappings, sign in. Any failure: refused, audited, nobody signed in."""
    conf = oidc.config()
    if not conf:
        return _refused(
            request, Refused("Single sign-on is not configured.", "oidc: not configured")
        )
    try:
        app = oidc.client(conf)
        token = app.authorize_access_token(request, claims_options=oidc.claims_options(app, conf))
    except (OAuthError, JoseError) as exc:
        return _refused(
            request, Refused("Single sign-on was refused; please try again.", oidc.describe(exc))
        )
    except requests.RequestException as exc:
        return _refused(
            request, Refused(UNAVAILABLE, f"oidc: provider unreachable ({type(exc).__name__})")
        )
    except (ValueError, KeyError, TypeError) as exc:
        # A provider answer that is not what the protocol says (bad JSON, missing fields).
        return _refused(
            request,
            Refused(UNAVAILABLE, f"oidc: unusable answer from the provider ({type(exc).__name__})"),
        )
    claims = token.get("userinfo")
    if not claims:
        return _refused(
            request, Refused("Single sign-on was refused; please try again.", "oidc: no ID token")
        )
    username = str(oidc.claim(claims, conf["USERNAME_CLAIM"]) or "")
    try:
        user = sign_in(
            source=OIDC,
            subject=f"{claims['iss']} {claims['sub']}",
            username=username,
            profile={
                "email": str(claims.get("email") or ""),
                "first_name": str(claims.get("given_name") or ""),
                "last_name": str(claims.get("family_name") or ""),
            },
            groups=oidc.claim(claims, conf["GROUPS_CLAIM"]) or [],
        )
    except Refused as refusal:
        return _refused(request, refusal, username)
    next_url = request.session.pop(NEXT_KEY, "") or reverse("dashboard:home")
    # login() rotates the session key; the ID token is kept for the logout hint only.
    login(request, user, backend=MODEL_BACKEND)
    request.session[SOURCE_KEY] = OIDC
    request.session[ID_TOKEN_KEY] = token.get("id_token", "")
    record_sign_in(source=OIDC, username=user.username, outcome="allowed", reason="oidc", user=user)
    return redirect(next_url)


def end_session_url(request) -> str | None:
    """Where to send a browser after logging out: the provider's end-session endpoint when the
    session came from OIDC sign-in and the provider has one; audits the logout. Call it before
    logout() (it reads the session)."""
    if request.session.get(SOURCE_KEY) != OIDC:
        return None
    id_token = request.session.get(ID_TOKEN_KEY, "")
    if request.user.is_authenticated:
        record_sign_in(
            source=OIDC,
            username=request.user.username,
            outcome="allowed",
            reason="logout",
            user=request.user,
            action="auth.logout",
        )
    conf = oidc.config()
    if not conf:
        return None
    try:
        end = oidc.client(conf).load_server_metadata().get("end_session_endpoint")
    except (requests.RequestException, OAuthError, ValueError):
        end = None
    if not end:
        return None
    query = {
        "post_logout_redirect_uri": request.build_absolute_uri(reverse("dashboard:login")),
        "client_id": conf["CLIENT_ID"],
    }
    if id_token:
        query["id_token_hint"] = id_token
    return f"{end}?{urlencode(query)}"


@gated(PUBLIC, login=False)
@require_POST
def oidc_logout(request):
    """Sign out here, then at the provider (RP-initiated logout) when it offers an end-session
    endpoint; back to the login page otherwise."""
    target = end_session_url(request)
    logout(request)
    if target:
        return HttpResponseRedirect(target)
    messages.info(request, "Signed out.")
    return redirect("dashboard:login")
