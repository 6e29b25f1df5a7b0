"""Who is calling: a Berth API token as `Authorization: Bearer ...`, or on the TLS listener a
client certificate Berth's CA issued (dockerapi/tls.py).

No session cookie is accepted (a browser's cookie would make every page a cross-site request
forger), so the Docker API needs no CSRF token. The docker CLI sends the header from
`~/.docker/config.json` `HttpHeaders`.
"""

from rest_framework import exceptions

from accounts.authentication import BearerTokenAuthentication
from dockerapi import tls
from dockerapi.errors import DockerError

NO_TOKEN = (
    "Berth needs an API token: put "
    '{"HttpHeaders": {"Authorization": "Bearer <token>"}} in ~/.docker/config.json '
    "(a token comes from the dashboard or `manage.py create_token USER --name NAME`)"
)


def authenticate(request):
    """The user of the request's verified TLS client certificate (dockerapi/tls.py) or bearer
    token; DockerError 401 without a valid one."""
    identity = (getattr(request, "scope", None) or {}).get(tls.SCOPE_KEY)
    if identity:
        user, reason = tls.certificate_user(identity)
        if user is None:
            raise DockerError(401, f"Berth refused the client certificate: {reason}")
        return user
    try:
        found = BearerTokenAuthentication().authenticate(request)
    except exceptions.AuthenticationFailed as exc:
        raise DockerError(401, f"Berth refused the API token: {exc.detail}") from None
    if found is None:
        raise DockerError(401, NO_TOKEN)
    return found[0]
