"""Search: a registry's catalog and tags, or Docker Hub's search API where it is reachable."""

import json
import urllib.parse

from runtime.errors import InvalidSpec
from runtime.registry.client import RegistryClient
from runtime.registry.errors import RegistryError
from runtime.registry.reference import DOCKER_HUB
from runtime.registry.transport import Transport

HUB_INDEX = "index.docker.io"


def search_registry(
    client: RegistryClient, term: str = "", limit: int = 100, with_tags=False
) -> list[dict]:
    """Repositories of a registry's catalog whose name contains `term` (tags listed on request)."""
    term = term.strip().lower()
    results = []
    for name in client.catalog():
        if term and term not in name.lower():
            continue
        entry = {"name": f"{client.host}/{name}", "description": "", "stars": 0, "official": False}
        if with_tags:
            entry["tags"] = client.tags(name)
        results.append(entry)
        if len(results) >= limit:
            break
    return results


def search_hub(term: str, limit: int = 25, timeout: float = 10.0) -> list[dict]:
    """Docker Hub's search (GET index.docker.io/v1/search); RegistryError if unreachable."""
    if not term.strip():
        raise InvalidSpec("give a search term")
    transport = Transport(HUB_INDEX, timeout=timeout, scheme="https")
    query = urllib.parse.urlencode({"q": term, "n": limit})
    try:
        resp = transport.request("GET", f"/v1/search?{query}", {"Accept": "application/json"})
    except RegistryError as exc:
        raise RegistryError(f"Docker Hub search is not reachable from this host: {exc}") from exc
    if resp.status != 200:
        raise RegistryError(f"Docker Hub search answered {resp.status}")
    data = json.loads(resp.body())
    return [
        {
            "name": item.get("name", ""),
            "description": item.get("description") or "",
            "stars": item.get("star_count", 0),
            "official": bool(item.get("is_official")),
        }
        for item in data.get("results") or []
    ][:limit]


def search(
    term: str, registry: str | None = None, client: RegistryClient | None = None, limit=25
) -> list[dict]:
    """Search `registry` (host[:port]) by catalog, or Docker Hub when none is given."""
    if registry in (None, "", DOCKER_HUB, HUB_INDEX):
        return search_hub(term, limit)
    return search_registry(client or RegistryClient(registry), term, limit)
