"""An image inventory as a CycloneDX JSON SBOM (cyclonedx-python-lib, package URLs)."""

from cyclonedx.model.bom import Bom
from cyclonedx.model.component import Component, ComponentType
from cyclonedx.output.json import JsonV1Dot5
from packageurl import PackageURL

from compliance.models import ImageInventory

PURL_TYPES = {"deb": "deb", "apk": "apk"}


def _namespace(ecosystem: str, kind: str) -> str:
    base = ecosystem.split(":", 1)[0].lower()
    return base or {"deb": "debian", "apk": "alpine"}.get(kind, "")


def _distro(ecosystem: str) -> str | None:
    base, _, release = ecosystem.partition(":")
    return f"{base.lower()}-{release.lstrip('v')}" if release else None


def cyclonedx_json(inventory: ImageInventory) -> str:
    """The SBOM of one image inventory, CycloneDX 1.5 JSON."""
    image = inventory.image
    bom = Bom()
    bom.metadata.component = Component(
        name=(image.repo_tags[0] if image.repo_tags else image.image_id),
        version=image.image_id,
        type=ComponentType.CONTAINER,
        bom_ref=image.image_id,
    )
    distro = _distro(inventory.ecosystem)
    for package in inventory.packages:
        kind = package.get("kind", "")
        qualifiers = {}
        if package.get("arch"):
            qualifiers["arch"] = package["arch"]
        if distro:
            qualifiers["distro"] = distro
        if package.get("source") and package["source"] != package["name"]:
            qualifiers["upstream"] = package["source"]
        purl = PackageURL(
            type=PURL_TYPES.get(kind, "generic"),
            namespace=_namespace(inventory.ecosystem, kind) or None,
            name=package["name"],
            version=package["version"],
            qualifiers=qualifiers or None,
        )
        bom.components.add(
            Component(
                name=package["name"],
                version=package["version"],
                type=ComponentType.LIBRARY,
                purl=purl,
                bom_ref=purl.to_string(),
            )
        )
    return JsonV1Dot5(bom).output_as_string(indent=2)
