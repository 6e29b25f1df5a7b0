"""One Docker API request as the handlers see it: the user, the query, the body, the audit summary."""

import json
from dataclasses import dataclass, field

from api.base import _redacted
from dockerapi.errors import bad_request

MAX_BODY = 1024 * 1024  # create bodies are a few kB; anything larger is not a container spec


@dataclass
class Call:
    """The authenticated request and the path's captured parts."""

    request: object
    user: object
    version: str
    args: dict = field(default_factory=dict)

    @property
    def query(self):
        """The query parameters (a QueryDict)."""
        return self.request.GET

    def flag(self, name: str, default: bool = False) -> bool:
        """A boolean query parameter as Docker's clients send them (1/true/0/false)."""
        raw = self.query.get(name)
        if raw in (None, ""):
            return default
        if raw.lower() in ("1", "true", "yes"):
            return True
        if raw.lower() in ("0", "false", "no"):
            return False
        raise bad_request(f"invalid boolean value {raw!r} for query parameter {name}")

    def integer(self, name: str, default=None):
        """An integer query parameter."""
        raw = self.query.get(name)
        if raw in (None, ""):
            return default
        try:
            return int(raw)
        except ValueError:
            raise bad_request(f"invalid integer {raw!r} for query parameter {name}") from None

    def filters(self, allowed: set | None = None) -> dict[str, list[str]]:
        """Docker's `filters` JSON: {"key": ["v", ...]} or the older {"key": {"v": true}};
        a key outside `allowed` answers 400 as Docker does."""
        raw = self.query.get("filters")
        if not raw:
            return {}
        try:
            data = json.loads(raw)
        except ValueError:
            raise bad_request(f"invalid filters {raw!r}") from None
        if not isinstance(data, dict):
            raise bad_request("filters must be a JSON object")
        out = {}
        for key, values in data.items():
            if isinstance(values, dict):
                values = [v for v, on in values.items() if on]
            if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
                raise bad_request(f"invalid values of filter {key!r}")
            out[key] = values
        unknown = set(out) - allowed if allowed is not None else set()
        if unknown:
            raise bad_request(f"invalid filter '{sorted(unknown)[0]}'")
        return out

    def json(self, *, required: bool = True):
        """The body as a JSON object (400 when malformed, too large or not an object)."""
        raw = self.request.body
        if len(raw) > MAX_BODY:
            raise bad_request("request body too large")
        if not raw.strip():
            if required:
                raise bad_request("request body is required")
            return {}
        try:
            data = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as exc:
            raise bad_request(f"malformed JSON in request body: {exc}") from None
        if not isinstance(data, dict):
            raise bad_request("request body must be a JSON object")
        return data

    def summary(self, **extra) -> dict:
        """What the audit event keeps: method, path, query, the client's User-Agent."""
        request = self.request
        data = {
            "method": request.method,
            "path": request.path,
            "via": "docker-api",
            "user_agent": request.headers.get("User-Agent", "")[:200],
        }
        if request.GET:
            data["query"] = {k: _redacted(k, request.GET.get(k)) for k in list(request.GET)[:20]}
        return data | extra
