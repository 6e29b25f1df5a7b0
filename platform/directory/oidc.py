"""OIDC sign-in through Authlib: authorization code flow with PKCE (S256), state and nonce kept
in the session, the ID token's signature, issuer, audience, expiry and nonce checked by Authlib.

Tokens stay in memory and the session (the ID token, for the logout hint); they are never
written to a log or the audit log.
"""

import logging
import threading

from authlib.integrations.base_client import OAuthError
from authlib.integrations.django_client import OAuth
from django.conf import settings
from joserfc.errors import JoseError

# Authlib logs the PKCE verifier at DEBUG: keep its logger above that whatever the root level.
logging.getLogger("authlib").setLevel(logging.WARNING)

_lock = threading.Lock()
_clients: dict[tuple, object] = {}


def config() -> dict:
    """settings.BERTH_OIDC; {} when OIDC sign-in is off (no issuer or client id)."""
    conf = dict(getattr(settings, "BERTH_OIDC", None) or {})
    if not (conf.get("ISSUER") and conf.get("CLIENT_ID")):
        return {}
    # Without the openid scope there is no ID token, and nothing to check: always ask for it.
    scopes = (conf.get("SCOPES") or "").split()
    conf["SCOPES"] = " ".join(["openid", *[s for s in scopes if s != "openid"]])
    conf.setdefault("GROUPS_CLAIM", "groups")
    conf.setdefault("USERNAME_CLAIM", "preferred_username")
    return conf


def client(conf):
    """The Authlib client for this configuration (its discovery document is cached with it)."""
    key = (conf["ISSUER"], conf["CLIENT_ID"], conf.get("CLIENT_SECRET"), conf.get("SCOPES"))
    with _lock:
        app = _clients.get(key)
        if app is None:
            oauth = OAuth()
            app = oauth.register(
                name="berth",
                client_id=conf["CLIENT_ID"],
                client_secret=conf.get("CLIENT_SECRET") or None,
                server_metadata_url=conf["ISSUER"].rstrip("/")
                + "/.well-known/openid-configuration",
                client_kwargs={
                    "scope": conf.get("SCOPES") or "openid",
                    "code_challenge_method": "S256",
                    "timeout": 10,
                },
            )
            _clients[key] = app
    return app


def claims_options(app, conf) -> dict:
    """What the ID token must say: this issuer, this client as audience, an expiry."""
    issuer = app.load_server_metadata().get("issuer") or conf["ISSUER"]
    return {
        "iss": {"essential": True, "values": [issuer]},
        "aud": {"essential": True, "values": [conf["CLIENT_ID"]]},
        "exp": {"essential": True},
        "sub": {"essential": True},
    }


def claim(claims, path: str):
    """A claim by name, or by a dotted path into nested objects (Keycloak's
    `realm_access.roles`); None when absent."""
    value = claims
    for part in path.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


def forget_clients() -> None:
    """Drop cached clients and discovery documents (tests start new providers)."""
    with _lock:
        _clients.clear()


def describe(exc: Exception) -> str:
    """A refusal's audit reason, from Authlib's exception (never the token itself)."""
    if isinstance(exc, OAuthError):
        if exc.error == "mismatching_state":
            return "oidc: state does not match this browser's sign-in"
        return f"oidc: provider error {exc.error}"[:200]
    if isinstance(exc, JoseError):
        return f"oidc: ID token refused ({exc.error}: {exc.description or ''})"[:200]
    return f"oidc: {type(exc).__name__}"
