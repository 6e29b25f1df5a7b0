"""The provider's validator: a `groups` claim from the user's Django groups, and a switch the
tests flip ($IDP_DIR/tamper) to issue bad ID tokens: wrong signature, audience, expiry or nonce."""

import json
import os
import time
from pathlib import Path

from jwcrypto import jwk, jwt
from oauth2_provider.oauth2_validators import OAuth2Validator

_OTHER_KEY = None


def _mode() -> str:
    path = Path(os.environ["IDP_DIR"]) / "tamper"
    return path.read_text().strip() if path.exists() else ""


def _other_key():
    global _OTHER_KEY
    if _OTHER_KEY is None:
        _OTHER_KEY = jwk.JWK.generate(kty="RSA", size=2048)
    return _OTHER_KEY


class TamperingValidator(OAuth2Validator):
    """django-oauth-toolkit's validator plus groups, and deliberate faults on request."""

    oidc_claim_scope = {**OAuth2Validator.oidc_claim_scope, "groups": "openid"}

    def get_additional_claims(self, request):
        user = request.user
        return {
            "preferred_username": user.username,
            "email": user.email,
            "groups": sorted(user.groups.values_list("name", flat=True)),
        }

    def get_id_token_dictionary(self, token, token_handler, request):
        claims, expiration = super().get_id_token_dictionary(token, token_handler, request)
        mode, now = _mode(), int(time.time())
        if mode == "audience":
            claims["aud"] = "someone-else"
        elif mode == "expired":
            claims["iat"], claims["exp"] = now - 7200, now - 3600
        elif mode == "nonce":
            claims["nonce"] = "not-the-nonce-berth-sent"
        return claims, expiration

    def finalize_id_token(self, id_token, token, token_handler, request):
        serialized = super().finalize_id_token(id_token, token, token_handler, request)
        if _mode() != "signature":
            return serialized
        # Same header (so the same kid) and claims, signed by a key the JWKS does not publish.
        parsed = jwt.JWT(jwt=serialized)
        header = json.loads(parsed.token.objects["protected"])
        claims = json.loads(parsed.token.objects["payload"])
        forged = jwt.JWT(header=header, claims=claims)
        forged.make_signed_token(_other_key())
        return forged.serialize()
