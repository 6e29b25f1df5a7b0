"""Saved registry logins and insecure-registry settings, in one file under config.root (mode 600)."""

import base64
import contextlib
import json
import os
from pathlib import Path

from runtime.errors import InvalidSpec
from runtime.registry.reference import DOCKER_HUB

FILE_NAME = "registries.json"


def _key(host: str) -> str:
    host = host.strip().lower()
    if host in ("index.docker.io", "registry-1.docker.io", "https://index.docker.io/v1/"):
        return DOCKER_HUB
    if not host or "/" in host:
        raise InvalidSpec(f"invalid registry host {host!r} (give host[:port])")
    return host


class CredentialStore:
    """Reads and writes `<root>/registries.json`: {"auths": {host: {"auth": b64}}, "insecure": [...]}."""

    def __init__(self, config):
        self.path = Path(config.root) / FILE_NAME

    def _load(self) -> dict:
        try:
            data = json.loads(self.path.read_text())
        except FileNotFoundError:
            return {"auths": {}, "insecure": []}
        except ValueError as exc:
            raise InvalidSpec(f"{self.path} is not valid JSON: fix or remove it") from exc
        data.setdefault("auths", {})
        data.setdefault("insecure", [])
        return data

    def _save(self, data: dict) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{FILE_NAME}.{os.getpid()}")
        # Created 600 from the start: passwords never sit in a world-readable file.
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        with os.fdopen(fd, "w") as out:
            json.dump(data, out, indent=1)
        os.chmod(tmp, 0o600)
        os.replace(tmp, self.path)

    def get(self, host: str) -> tuple[str, str] | None:
        """The saved (user, password) for `host`, or None."""
        entry = self._load()["auths"].get(_key(host))
        if not entry or "auth" not in entry:
            return None
        user, _, password = base64.b64decode(entry["auth"]).decode().partition(":")
        return user, password

    def set(self, host: str, user: str, password: str) -> None:
        """Save a login for `host`."""
        if not user or ":" in user:
            raise InvalidSpec("a user name is required and may not contain ':'")
        data = self._load()
        token = base64.b64encode(f"{user}:{password}".encode()).decode()
        data["auths"][_key(host)] = {"auth": token}
        self._save(data)

    def remove(self, host: str) -> bool:
        """Forget the login for `host`; False if there was none."""
        data = self._load()
        found = data["auths"].pop(_key(host), None) is not None
        if found:
            self._save(data)
        return found

    def is_insecure(self, host: str) -> bool:
        """True if an admin marked `host` insecure (TLS unverified, plain HTTP allowed)."""
        return _key(host) in self._load()["insecure"]

    def set_insecure(self, host: str, insecure: bool = True) -> None:
        """Mark or unmark `host` as an insecure registry."""
        data = self._load()
        key = _key(host)
        with contextlib.suppress(ValueError):
            data["insecure"].remove(key)
        if insecure:
            data["insecure"].append(key)
        self._save(data)


def login(config, host: str, user: str, password: str, insecure: bool = False) -> None:
    """Check the credentials against the registry, then save them (nothing saved if refused)."""
    from runtime.registry.client import RegistryClient
    from runtime.registry.reference import DOCKER_HUB_API

    store = CredentialStore(config)
    key = _key(host)
    api_host = DOCKER_HUB_API if key == DOCKER_HUB else key
    client = RegistryClient(
        api_host, username=user, password=password, insecure=insecure or store.is_insecure(key)
    )
    # GET /v2/ with the credentials: the token server or the registry says yes or no
    # (an open registry says yes to anyone, as with Docker).
    client.ping()
    store.set(key, user, password)
