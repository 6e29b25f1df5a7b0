"""Registry image references: "[registry/]repo[:tag][@digest]" split the way Docker does."""

import re
from dataclasses import dataclass

from runtime.errors import InvalidSpec

DOCKER_HUB = "docker.io"
DOCKER_HUB_API = "registry-1.docker.io"
DEFAULT_TAG = "latest"
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_REPO_RE = re.compile(rf"^{_COMPONENT}(?:/{_COMPONENT})*$")
_DOMAIN_RE = re.compile(
    r"^(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?(?:\.[a-zA-Z0-9-]+)*|\[[0-9a-fA-F:]+\])(?::[0-9]+)?$"
)
_TAG_RE = re.compile(r"^[\w][\w.-]{0,127}$")
DIGEST_RE = re.compile(r"^sha256:[0-9a-f]{64}$")


@dataclass(frozen=True)
class Reference:
    """A parsed image reference; `registry` is the host[:port] the name points at."""

    registry: str
    repository: str
    tag: str | None = None
    digest: str | None = None

    @property
    def api_host(self) -> str:
        """The host[:port] that speaks the HTTP API (Docker Hub's differs from its name)."""
        return DOCKER_HUB_API if self.registry == DOCKER_HUB else self.registry

    @property
    def name(self) -> str:
        """The familiar name: "busybox" for Docker Hub's library, else "registry/repo"."""
        if self.registry == DOCKER_HUB:
            repo = self.repository
            return repo[len("library/") :] if repo.startswith("library/") else repo
        return f"{self.registry}/{self.repository}"

    @property
    def reference(self) -> str:
        """What goes into a manifest URL: the digest if there is one, else the tag."""
        return self.digest or self.tag or DEFAULT_TAG

    def tagged(self) -> str | None:
        """The "name:tag" the image is stored under locally, or None for a digest-only pull."""
        return f"{self.name}:{self.tag}" if self.tag else None

    def with_tag(self, tag: str) -> "Reference":
        """The same repository with another tag and no digest."""
        return Reference(self.registry, self.repository, tag, None)

    def __str__(self) -> str:
        text = self.name
        if self.tag:
            text += f":{self.tag}"
        if self.digest:
            text += f"@{self.digest}"
        return text


def parse(ref: str) -> Reference:
    """Parse `ref`; the tag defaults to "latest" unless a digest is given. InvalidSpec if bad."""
    if not isinstance(ref, str) or not ref or ref != ref.strip() or len(ref) > 512:
        raise InvalidSpec(f"invalid image reference {ref!r}")
    rest, digest = ref, None
    if "@" in rest:
        rest, digest = rest.split("@", 1)
        if not DIGEST_RE.match(digest):
            raise InvalidSpec(f"invalid digest {digest!r} in {ref!r} (want sha256:<64 hex>)")
    tag = None
    slash, colon = rest.rfind("/"), rest.rfind(":")
    if colon > slash:
        rest, tag = rest[:colon], rest[colon + 1 :]
        if not _TAG_RE.match(tag):
            raise InvalidSpec(f"invalid tag {tag!r} in image reference {ref!r}")
    registry, repo = DOCKER_HUB, rest
    first, sep, remainder = rest.partition("/")
    # Docker's rule: the first component is a registry if it looks like a host.
    if sep and ("." in first or ":" in first or first == "localhost" or first.startswith("[")):
        registry, repo = first, remainder
        if not _DOMAIN_RE.match(registry):
            raise InvalidSpec(f"invalid registry {registry!r} in image reference {ref!r}")
    if registry in ("index.docker.io", "registry-1.docker.io"):
        registry = DOCKER_HUB
    if registry == DOCKER_HUB and "/" not in repo:
        repo = f"library/{repo}"
    if len(repo) > 255 or not _REPO_RE.match(repo):
        raise InvalidSpec(
            f"invalid image reference {ref!r}: names are lower-case letters, digits and separators"
        )
    if tag is None and digest is None:
        tag = DEFAULT_TAG
    return Reference(registry, repo, tag, digest)


def parse_repository(name: str) -> Reference:
    """Parse a repository name without tag or digest (for tags listing and catalogs)."""
    ref = parse(name)
    if ref.digest or ":" in name.rsplit("/", 1)[-1]:
        raise InvalidSpec(f"{name!r}: give a repository without tag or digest")
    return Reference(ref.registry, ref.repository)
