"""Who is calling: a Berth API token as `Authorization: Bearer ...`, nothing else.

No session cookie is accepted (a browser's cookie would make every page a cross-site request
forger), so the Docker API needs no CSRF token. The docker CLI sends the header from
`~/.docker/config.json` `HttpHeaders`.
"""

from rest_framework import exceptions

from accounts.authentication import BearerTokenAuthentication
from dockerapi.errors import DockerError

NO_TOKEN = (
    "Berth needs an API token: put "
    '{"HttpHeaders": {"Authorization": "Bearer <token>"}} in ~/.docker/config.json '
    "(a token comes from the dashboard or `manage.py create_token USER --name NAME`)"
)


def authenticate(request):
    """The user of the request's bearer token; DockerError 401 without a valid one."""
    try:
        found = BearerTokenAuthentication().authenticate(request)
    except exceptions.AuthenticationFailed as exc:
        raise DockerError(401, f"Berth refused the API token: {exc.detail}") from None
    if found is None:
        raise DockerError(401, NO_TOKEN)
    return found[0]
