"""`Authorization: Bearer <token>` authentication for the REST API."""

import copy

from django.utils import timezone
from rest_framework import authentication, exceptions

from accounts.models import ApiToken, hash_token
from rbac import generation

# token hash -> the token row with its user, as read under a generation (rbac/generation.py):
# used only while nothing about users or tokens changed since, so a revoked token, a
# deactivated user or an expired token is refused at the next request, as without it.
_tokens = generation.GenerationCache()


def _lookup(key_hash: str, current) -> ApiToken | None:
    token = _tokens.get(key_hash, current)
    if token is None:
        token = ApiToken.objects.select_related("user").filter(key_hash=key_hash).first()
        if token is None:
            return None
        _tokens.put(key_hash, current, token)
    # A copy for this request: the gate and the views hang per-request state on the user.
    mine = copy.copy(token)
    mine.user = copy.copy(token.user)
    return mine


class BearerTokenAuthentication(authentication.BaseAuthentication):
    """Authenticate with a hashed, expiring, revocable API token; `request.auth` is the token."""

    keyword = "bearer"

    def authenticate(self, request):
        header = authentication.get_authorization_header(request).split()
        if not header or header[0].lower() != self.keyword.encode():
            return None
        if len(header) != 2:
            raise exceptions.AuthenticationFailed("Authorization header must be 'Bearer <token>'.")
        try:
            secret = header[1].decode()
        except UnicodeDecodeError:
            raise exceptions.AuthenticationFailed("Invalid token.") from None
        # Read before the database: what is cached under it was read after it.
        current = generation.current()
        key_hash = hash_token(secret)
        token = _lookup(key_hash, current)
        if token is None:
            raise exceptions.AuthenticationFailed("Invalid token.")
        if token.revoked_at is not None:
            raise exceptions.AuthenticationFailed("Token revoked.")
        if token.expires_at <= timezone.now():
            raise exceptions.AuthenticationFailed("Token expired.")
        if not token.user.is_active:
            raise exceptions.AuthenticationFailed("User inactive.")
        # One small write per request would serialise every API call on SQLite; a minute is enough.
        now = timezone.now()
        if token.last_used_at is None or (now - token.last_used_at).total_seconds() > 60:
            ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
            cached = _tokens.get(key_hash, current)
            if cached is not None:
                cached.last_used_at = now
        # The gate reads this flag: a read-only token may only read.
        token.user.berth_read_only = token.read_only
        # The grants of this request are read under the same generation (rbac/grants.py).
        token.user._berth_generation = current
        return token.user, token

    def authenticate_header(self, request):
        return 'Bearer realm="api"'
