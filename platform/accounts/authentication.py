"""`Authorization: Bearer <token>` authentication for the REST API."""

from django.db.models.base import ModelState
from django.utils import timezone
from rest_framework import HTTP_HEADER_ENCODING, authentication, exceptions

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
    mine = _copy(token)
    mine.user = _copy(token.user)
    return mine


def _copy(instance):
    """What copy.copy makes of a model instance (its own attributes, state and related-object
    cache), without the pickling protocol's detour (__reduce_ex__, __getstate__,
    __setstate__): a tenth of a millisecond less per API request (issue 15)."""
    clone = object.__new__(type(instance))
    clone.__dict__ = instance.__dict__.copy()
    state = clone._state = ModelState()
    state.__dict__.update(instance._state.__dict__)
    state.fields_cache = instance._state.fields_cache.copy()
    return clone


def _authorization(request) -> bytes:
    """The Authorization header as bytes, as DRF's get_authorization_header gives it, read from
    META: DRF reads request.headers, which builds a map of every header (under granian, of
    the whole process environment too) on each request (issue 19)."""
    value = request.META.get("HTTP_AUTHORIZATION", b"")
    return value.encode(HTTP_HEADER_ENCODING) if isinstance(value, str) else value


class BearerTokenAuthentication(authentication.BaseAuthentication):
    """Authenticate with a hashed, expiring, revocable API token; `request.auth` is the token."""

    keyword = "bearer"

    def authenticate(self, request):
        header = _authorization(request).split()
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
