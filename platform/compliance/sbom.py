"""An image inventory as an SBOM: CycloneDX 1.5 JSON (cyclonedx-python-lib) or SPDX 2.3 JSON
(spdx-tools, which validates the document before it is written); packages named by their
package URLs in both."""

import io
import re
from datetime import UTC, datetime

from cyclonedx.model.bom import Bom
from cyclonedx.model.component import Component, ComponentType
from cyclonedx.output.json import JsonV1Dot5
from packageurl import PackageURL

from compliance.models import ImageInventory

PURL_TYPES = {"deb": "deb", "apk": "apk", "rpm": "rpm"}


def _namespace(ecosystem: str, kind: str) -> str:
    base = ecosystem.split(":", 1)[0].lower()
    return base.replace(" ", "") or {"deb": "debian", "apk": "alpine"}.get(kind, "")


def _distro(ecosystem: str) -> str | None:
    base, _, release = ecosystem.partition(":")
    return f"{base.lower()}-{release.lstrip('v')}" if release else None


def _purl(inventory: ImageInventory, package: dict) -> PackageURL:
    kind = package.get("kind", "")
    qualifiers = {}
    if package.get("arch"):
        qualifiers["arch"] = package["arch"]
    distro = _distro(inventory.ecosystem)
    if distro:
        qualifiers["distro"] = distro
    if package.get("source") and package["source"] != package["name"]:
        qualifiers["upstream"] = package["source"]
    version = package["version"]
    if kind == "rpm" and ":" in version:
        # The purl spec keeps an rpm's epoch in a qualifier, not in the version.
        qualifiers["epoch"], _, version = version.partition(":")
    return PackageURL(
        type=PURL_TYPES.get(kind, "generic"),
        namespace=_namespace(inventory.ecosystem, kind) or None,
        name=package["name"],
        version=version,
        qualifiers=qualifiers or None,
    )


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
    for package in inventory.packages:
        purl = _purl(inventory, package)
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


def _spdx_id(text: str) -> str:
    """An SPDX element id: SPDXRef- then letters, digits, '.' and '-' only."""
    return "SPDXRef-" + re.sub(r"[^A-Za-z0-9.-]+", "-", text).strip("-")


def spdx_json(
    inventory: ImageInventory, *, namespace_base: str = "https://berth.invalid/spdx"
) -> str:
    """The SBOM of one image inventory, SPDX 2.3 JSON: the image as the described package,
    each installed package CONTAINED_BY... (image CONTAINS package), with its package URL."""
    from spdx_tools.spdx.model import (
        Actor,
        ActorType,
        CreationInfo,
        Document,
        ExternalPackageRef,
        ExternalPackageRefCategory,
        Package,
        PackagePurpose,
        Relationship,
        RelationshipType,
        SpdxNoAssertion,
    )
    from spdx_tools.spdx.writer.json.json_writer import write_document_to_stream

    image = inventory.image
    name = image.repo_tags[0] if image.repo_tags else image.image_id
    created = (inventory.scanned_at or datetime.now(UTC)).replace(microsecond=0)
    info = CreationInfo(
        spdx_version="SPDX-2.3",
        spdx_id="SPDXRef-DOCUMENT",
        name=f"image {name}",
        # Unique per image and scan, as the spec asks; not meant to be fetched.
        document_namespace=f"{namespace_base}/{image.image_id.replace(':', '-')}/{inventory.pk}",
        creators=[Actor(ActorType.TOOL, "Berth")],
        created=created,
    )
    root_id = _spdx_id("image-" + image.image_id.split(":")[-1][:32])
    root = Package(
        spdx_id=root_id,
        name=name,
        download_location=SpdxNoAssertion(),
        version=image.image_id,
        files_analyzed=False,
        primary_package_purpose=PackagePurpose.CONTAINER,
    )
    packages, relationships = (
        [root],
        [Relationship("SPDXRef-DOCUMENT", RelationshipType.DESCRIBES, root_id)],
    )
    seen = set()
    for package in inventory.packages:
        purl = _purl(inventory, package).to_string()
        spdx_id = _spdx_id(f"pkg-{package['name']}-{package['version']}")
        if spdx_id in seen:
            spdx_id = _spdx_id(f"{spdx_id}-{len(seen)}")
        seen.add(spdx_id)
        packages.append(
            Package(
                spdx_id=spdx_id,
                name=package["name"],
                download_location=SpdxNoAssertion(),
                version=package["version"],
                files_analyzed=False,
                source_info=f"built from source package {package['source']}"
                if package.get("source") and package["source"] != package["name"]
                else None,
                external_references=[
                    ExternalPackageRef(ExternalPackageRefCategory.PACKAGE_MANAGER, "purl", purl)
                ],
                primary_package_purpose=PackagePurpose.LIBRARY,
            )
        )
        relationships.append(Relationship(root_id, RelationshipType.CONTAINS, spdx_id))
    out = io.StringIO()
    write_document_to_stream(
        Document(info, packages=packages, relationships=relationships), out, validate=True
    )
    return out.getvalue()
