"""Image inventories read from real layers in a real image store: dpkg status (real Debian
packages), apk's database, whiteouts and symlinks across layers, unreadable databases marked
unknown; the agent's operation stores them; the SBOM export."""

import json
import sqlite3
import tempfile
from pathlib import Path
from types import SimpleNamespace

import pytest
from agent import inventory_ops

from compliance.models import ImageInventory
from images.models import Image
from operations.models import Operation
from runtime.config import RuntimeConfig
from runtime.images import ImageStore, rpmdb
from runtime.images.inventory import read_inventory
from tests.runtime.images.image_archives import docker_archive, layer

FIXTURES = Path(__file__).parent / "fixtures"
DPKG_STATUS = (FIXTURES / "dpkg_status").read_bytes()
DEBIAN_RELEASE = b'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nID=debian\nVERSION_ID="12"\n'
ALPINE_RELEASE = (
    b'NAME="Alpine Linux"\nID=alpine\nVERSION_ID=3.19.1\nPRETTY_NAME="Alpine Linux v3.19"\n'
)
APK_INSTALLED = b"""C:Q1abc=
P:musl
V:1.2.4_git20230717-r4
A:x86_64
o:musl

P:busybox
V:1.36.1-r15
A:x86_64
o:busybox

P:libcrypto3
V:3.1.4-r1
A:x86_64
o:openssl
"""

ROCKY_RELEASE = b'NAME="Rocky Linux"\nID="rocky"\nVERSION_ID="9.3"\nPRETTY_NAME="Rocky Linux 9.3"\n'


def _rpmdb(blobs) -> bytes:
    """An sqlite file shaped like rpm's rpmdb.sqlite, holding these header blobs."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "rpmdb.sqlite"
        conn = sqlite3.connect(path)
        conn.execute("CREATE TABLE Packages (hnum INTEGER PRIMARY KEY AUTOINCREMENT, blob BLOB)")
        conn.executemany("INSERT INTO Packages (blob) VALUES (?)", [(b,) for b in blobs])
        conn.execute("CREATE TABLE Name (key TEXT, hnum INTEGER, idx INTEGER)")
        conn.commit()
        conn.close()
        return path.read_bytes()


RPM_HEADERS = [
    rpmdb.make_header(tags)
    for tags in (
        {1000: "bash", 1001: "5.1.8", 1002: "6.el9_1", 1022: "x86_64", 1044: "bash-5.1.8-6.el9_1.src.rpm"},
        {1000: "openssl-libs", 1003: 1, 1001: "3.0.7", 1002: "25.el9_3", 1022: "x86_64", 1044: "openssl-3.0.7-25.el9_3.src.rpm"},
        {1000: "gpg-pubkey", 1001: "350d275d", 1002: "6279464b"},
    )
]  # fmt: skip
RPM_LAYER = [("usr/", None), ("usr/lib/", None), ("usr/lib/sysimage/", None)]
RPM_LAYER += [("usr/lib/sysimage/rpm/", None), ("etc/", None), ("etc/os-release", ROCKY_RELEASE)]

IMAGES = {
    # Two layers: the upper one replaces dpkg's status and whites out apk's database.
    "tc-debian:1": [
        [
            ("usr/", None),
            ("usr/lib/", None),
            ("usr/lib/os-release", DEBIAN_RELEASE),
            ("etc/", None),
            ("etc/os-release", ("sym", "../usr/lib/os-release")),
            ("var/", None),
            ("var/lib/", None),
            ("var/lib/dpkg/", None),
            ("var/lib/dpkg/status", b"Package: old\nStatus: install ok installed\nVersion: 1\n"),
            ("lib/", None),
            ("lib/apk/", None),
            ("lib/apk/db/", None),
            ("lib/apk/db/installed", APK_INSTALLED),
        ],
        [
            ("var/", None),
            ("var/lib/", None),
            ("var/lib/dpkg/", None),
            ("var/lib/dpkg/status", DPKG_STATUS),
            ("lib/", None),
            ("lib/apk/", None),
            ("lib/apk/db/", None),
            ("lib/apk/db/.wh.installed", b""),
        ],
    ],
    "tc-alpine:1": [
        [
            ("etc/", None),
            ("etc/os-release", ALPINE_RELEASE),
            ("lib/", None),
            ("lib/apk/", None),
            ("lib/apk/db/", None),
            ("lib/apk/db/installed", APK_INSTALLED),
        ]
    ],
    "tc-garbled:1": [
        [
            ("var/", None),
            ("var/lib/", None),
            ("var/lib/dpkg/", None),
            ("var/lib/dpkg/status", b"\xff\xfe\x00garbage that is not a status file"),
        ]
    ],
    "tc-rpm:1": [
        [
            ("var/", None),
            ("var/lib/", None),
            ("var/lib/rpm/", None),
            ("var/lib/rpm/Packages", b"\0" * 64),
        ]
    ],
    "tc-static:1": [[("bin/", None), ("bin/app", b"\x7fELF")]],
    # rpm's sqlite database, reached through var/lib/rpm -> ../../usr/lib/sysimage/rpm.
    "tc-rocky:1": [
        RPM_LAYER
        + [
            ("usr/lib/sysimage/rpm/rpmdb.sqlite", _rpmdb(RPM_HEADERS)),
            ("var/", None),
            ("var/lib/", None),
            ("var/lib/rpm", ("sym", "../../usr/lib/sysimage/rpm")),
        ]
    ],
    "tc-rpm-garbled:1": [
        RPM_LAYER + [("usr/lib/sysimage/rpm/rpmdb.sqlite", _rpmdb([b"\0\0\0\x09 not a header"]))]
    ],
}


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """A real image store in a temporary root holding the images above."""
    root = tmp_path_factory.mktemp("tc-store")
    store = ImageStore(RuntimeConfig(root=root / "state", run_root=root / "run", prefix="tcinv"))
    for ref, layers in IMAGES.items():
        path = root / f"{ref.replace(':', '-')}.tar"
        docker_archive(path, [([layer(entries) for entries in layers], [ref], {"Cmd": ["sh"]})])
        store.import_archive(path)
    return store


def _inventory(store, ref):
    image = store.resolve(ref)
    return read_inventory(store.layer_dirs(image))


def test_dpkg_status_through_layers(store):
    found = _inventory(store, "tc-debian:1")
    assert found.status == "ok" and found.ecosystem == "Debian:12"
    assert found.distro == "Debian GNU/Linux 12 (bookworm)"  # through the os-release symlink
    by_name = {p.name: p for p in found.packages}
    # The upper layer's status file wins; config-files-only packages are not installed.
    assert set(by_name) == {"bash", "libc6", "libssl3", "libsystemd0", "login", "zlib1g", "tzdata"}
    assert (by_name["bash"].source, by_name["bash"].source_version) == ("bash", "5.2.15-2")
    assert (by_name["libc6"].source, by_name["libc6"].source_version) == (
        "glibc",
        "2.36-9+deb12u14",
    )
    assert by_name["zlib1g"].version == "1:1.2.13.dfsg-1"
    assert by_name["tzdata"].source == "tzdata"


def test_apk_database(store):
    found = _inventory(store, "tc-alpine:1")
    assert found.status == "ok" and found.ecosystem == "Alpine:v3.19"
    assert {(p.name, p.source, p.version) for p in found.packages} == {
        ("musl", "musl", "1.2.4_git20230717-r4"),
        ("busybox", "busybox", "1.36.1-r15"),
        ("libcrypto3", "openssl", "3.1.4-r1"),
    }


def test_rpm_sqlite_database_through_a_symlink(store):
    found = _inventory(store, "tc-rocky:1")
    assert found.status == "ok" and found.ecosystem == "Rocky Linux:9", found
    # The signing key rpm keeps as a package is not one.
    assert [(p.name, p.version, p.source, p.arch, p.kind) for p in found.packages] == [
        ("bash", "5.1.8-6.el9_1", "bash", "x86_64", "rpm"),
        ("openssl-libs", "1:3.0.7-25.el9_3", "openssl", "x86_64", "rpm"),
    ]
    # Nothing was written next to the database in the image's layer (opened immutable).
    [layer] = store.layer_dirs(store.resolve("tc-rocky:1"))
    assert sorted(p.name for p in (layer / "usr/lib/sysimage/rpm").iterdir()) == ["rpmdb.sqlite"]


@pytest.mark.parametrize(
    "ref,words",
    [
        ("tc-garbled:1", "unreadable"),
        ("tc-rpm-garbled:1", "unreadable"),
        ("tc-rpm:1", "rpm"),
        ("tc-static:1", "no package database"),
    ],
)
def test_unreadable_or_missing_databases_are_unknown_never_clean(store, ref, words):
    found = _inventory(store, ref)
    assert found.status == "unknown" and found.packages == []
    assert words in found.error


def test_agent_operation_stores_inventories_and_sbom(store, host, teams, api):
    rows = {}
    for ref in IMAGES:
        image = store.resolve(ref)
        rows[ref] = Image.objects.create(
            host=host, team=teams["alpha"], image_id=image.id, repo_tags=[ref], config=image.config
        )
    op = Operation.objects.create(kind="image.inventory", target_type="image", host=host)
    result = inventory_ops.image_inventory(SimpleNamespace(images=store), op)
    assert result["scanned"] == len(IMAGES) and result["unknown"] == 4
    debian = ImageInventory.objects.get(image=rows["tc-debian:1"])
    assert debian.status == "ok" and debian.package_count == 7 and debian.team == teams["alpha"]
    garbled = ImageInventory.objects.get(image=rows["tc-garbled:1"])
    assert garbled.status == "unknown" and "unreadable" in garbled.error

    # A foreign image id in the operation is not read.
    other = Operation.objects.create(
        kind="image.inventory", target_type="image", target_id="999999", host=host
    )
    with pytest.raises(Exception, match="not on host"):
        inventory_ops.image_inventory(SimpleNamespace(images=store), other)

    developer = api("developer")
    listed = developer.get("/api/v1/compliance/inventories/").json()
    assert listed["count"] == len(IMAGES)
    assert api("rando").get("/api/v1/compliance/inventories/").status_code == 403
    response = developer.get(f"/api/v1/compliance/inventories/{debian.pk}/sbom/")
    assert response.status_code == 200
    bom = json.loads(response.content)
    assert bom["bomFormat"] == "CycloneDX" and bom["specVersion"] == "1.5"
    purls = {c["purl"] for c in bom["components"]}
    assert (
        "pkg:deb/debian/libc6@2.36-9%2Bdeb12u14?arch=amd64&distro=debian-12&upstream=glibc" in purls
    )
    # SPDX 2.3 JSON (spdx-tools validated it before writing): the image contains its packages.
    response = developer.get(f"/api/v1/compliance/inventories/{debian.pk}/sbom/?kind=spdx")
    assert response.status_code == 200, response.content
    doc = json.loads(response.content)
    assert doc["spdxVersion"] == "SPDX-2.3" and doc["dataLicense"] == "CC0-1.0"
    [root] = [
        r["relatedSpdxElement"]
        for r in doc["relationships"]
        if r["relationshipType"] == "DESCRIBES"
    ]
    packages = {p["SPDXID"]: p for p in doc["packages"]}
    assert packages[root]["primaryPackagePurpose"] == "CONTAINER" and len(packages) == 8
    contained = {
        r["relatedSpdxElement"] for r in doc["relationships"] if r["relationshipType"] == "CONTAINS"
    }
    assert contained == set(packages) - {root}
    refs = {ref["referenceLocator"] for p in packages.values() for ref in p.get("externalRefs", [])}
    assert "pkg:deb/debian/bash@5.2.15-2%2Bb8?arch=amd64&distro=debian-12" in refs
    rocky = ImageInventory.objects.get(image=rows["tc-rocky:1"])
    spdx = developer.get(f"/api/v1/compliance/inventories/{rocky.pk}/sbom/?kind=spdx").json()
    refs = {ref["referenceLocator"] for p in spdx["packages"] for ref in p.get("externalRefs", [])}
    assert {r.split("?")[0] for r in refs} == {
        "pkg:rpm/rockylinux/bash@5.1.8-6.el9_1",
        "pkg:rpm/rockylinux/openssl-libs@3.0.7-25.el9_3",
    }
    assert any("epoch=1" in r and "upstream=openssl" in r for r in refs), refs
    bad = developer.get(f"/api/v1/compliance/inventories/{debian.pk}/sbom/?kind=xml")
    assert bad.status_code == 400
    unknown = developer.get(f"/api/v1/compliance/inventories/{garbled.pk}/sbom/")
    assert unknown.status_code == 409 and "unknown" in unknown.json()["error"]["message"]
    # The global viewer sees them too (compliance.view everywhere).
    assert api("viewer").get(f"/api/v1/compliance/inventories/{debian.pk}/").status_code == 200


def test_scheduled_scan_queues_one_operation_per_live_host(host, db):
    from audit.models import AuditEvent
    from compliance import tasks
    from hosts.models import Host

    Host.objects.create(name="tc-down", state=Host.State.DOWN)
    result = tasks.scan_inventories()
    ops = Operation.objects.filter(pk__in=result["operations"])
    assert [(op.kind, op.host_id, op.target_id) for op in ops] == [("image.inventory", host.pk, "")]
    assert AuditEvent.objects.filter(
        reason="scheduled inventory scan", object_id=str(host.pk)
    ).exists()
    assert tasks.run_scheduled()["run"]
