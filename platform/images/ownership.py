"""Image names are shared by every team of a host: who may run an image, who may take a tag.

The host's image store keeps one tag per name for all teams. A team that tags its own image
`busybox:latest` would have every other team's next `busybox` container run its code, and a
container created from another team's private image by name or id would read that team's
files. Both are decided here against the image rows the web knows, through the gate.
"""

import dataclasses

from images.models import Image
from rbac import gate
from rbac.errors import AccessDenied

_HUB_PREFIXES = ("docker.io/library/", "index.docker.io/library/", "docker.io/", "index.docker.io/")


def canonical(ref: str) -> str:
    """'docker.io/library/busybox' -> 'busybox:latest' (Docker's familiar name:tag form)."""
    ref = (ref or "").strip()
    name, _, digest = ref.partition("@")
    if digest:
        return ref
    slash, colon = name.rfind("/"), name.rfind(":")
    tag = "latest"
    if colon > slash:
        name, tag = name[:colon], name[colon + 1 :]
    for prefix in _HUB_PREFIXES:
        if name.startswith(prefix):
            name = name[len(prefix) :]
            break
    return f"{name}:{tag}"


def find(host, ref: str):
    """The image row of `host` that `ref` (name:tag, sha256:id or an id prefix) names, or None."""
    ref = (ref or "").strip()
    host_id = getattr(host, "pk", host)
    rows = Image.objects.filter(host_id=host_id).only("id", "team_id", "image_id", "repo_tags")
    plain = ref.removeprefix("sha256:")
    by_id = len(plain) >= 12 and all(c in "0123456789abcdef" for c in plain)
    wanted = canonical(ref)
    for row in rows:
        if by_id and row.image_id.removeprefix("sha256:").startswith(plain):
            return row
        if wanted in (row.repo_tags or []):
            return row
    return None


def foreign_image(host, ref: str, team_id) -> str | None:
    """A problem when `ref` names a private image of another team on `host` (else None)."""
    row = find(host, ref)
    if row is not None and row.team_id is not None and row.team_id != team_id:
        return f"image {ref!r} belongs to another team"
    return None


def check_tag_free(user, host, ref: str, team, *, summary=None) -> None:
    """Taking `ref` from the image that holds it needs image.delete on that image (audited)."""
    if not ref or "@" in ref:
        return
    row = find(host, ref)
    if row is None or row.team_id == getattr(team, "pk", None):
        return
    decision = gate.decide(user, "image.delete", row)
    if decision.allowed:
        return
    whose = "a shared image" if row.team_id is None else "another team's image"
    refused = dataclasses.replace(
        decision, reason=f"tag {canonical(ref)} is held by {whose}; you may not move it"
    )
    gate.record(refused, summary=summary)
    raise AccessDenied(refused)
