"""Registry client: pull, push, search and login against OCI Distribution (Registry v2) servers."""

from runtime.registry.client import RegistryClient
from runtime.registry.credentials import CredentialStore, login
from runtime.registry.errors import (
    DigestMismatch,
    ManifestNotFound,
    PlatformNotFound,
    RegistryAuthError,
    RegistryError,
)
from runtime.registry.pull import PullResult, pull
from runtime.registry.push import PushResult, push
from runtime.registry.reference import Reference, parse
from runtime.registry.search import search

__all__ = [
    "CredentialStore",
    "DigestMismatch",
    "ManifestNotFound",
    "login",
    "PlatformNotFound",
    "PullResult",
    "PushResult",
    "Reference",
    "RegistryAuthError",
    "RegistryClient",
    "RegistryError",
    "parse",
    "pull",
    "push",
    "search",
]
