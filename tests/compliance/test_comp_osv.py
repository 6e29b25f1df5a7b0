"""OSV import (command, API), malformed records skipped and counted, not-an-archive refused,
matching in each ecosystem's order, re-matching without reading images again, advisories per
image and per container."""

import json
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import CommandError, call_command

from audit.models import AuditEvent
from compliance import inventories
from compliance.models import Advisory, ImageAdvisory, OsvImport
from images.models import Image
from runtime.images.inventory import parse_apk_installed, parse_dpkg_status  # noqa: E402
from tests.compliance.fixtures.osv_fixture import (
    ALPINE_AFFECTED,
    DEBIAN_AFFECTED,
    MALFORMED,
    RECORDS,
    write_zip,
)
from tests.compliance.test_comp_inventory import APK_INSTALLED, DPKG_STATUS


@pytest.fixture
def osv_zip(tmp_path):
    return write_zip(tmp_path / "osv-debian-alpine.zip")


@pytest.fixture
def scanned(host, teams):
    """A Debian and an Alpine image of alpha, their inventories stored as an agent would."""
    out = {}
    for ref, eco, packages in [
        ("tc-debian:1", "Debian:12", parse_dpkg_status(DPKG_STATUS.decode())),
        ("tc-alpine:1", "Alpine:v3.19", parse_apk_installed(APK_INSTALLED.decode())),
    ]:
        image = Image.objects.create(
            host=host, team=teams["alpha"], image_id="sha256:" + str(len(out)) * 64, repo_tags=[ref]
        )
        found = {"status": "ok", "ecosystem": eco, "packages": [p.__dict__ for p in packages]}
        out[ref] = inventories.save(image, found)
    return out


def _osv_ids(inventory):
    return set(
        ImageAdvisory.objects.filter(inventory=inventory).values_list("advisory__osv_id", flat=True)
    )


def test_import_command_skips_malformed_and_matches(scanned, osv_zip, capsys):
    assert inventories.rematch([i.pk for i in scanned.values()]) == 0  # nothing imported yet
    call_command("import_osv", str(osv_zip))
    out = capsys.readouterr().out
    total = len(RECORDS) + len(MALFORMED)
    assert f"{total} records: {len(RECORDS)} imported, {len(MALFORMED)} skipped" in out
    result = OsvImport.objects.get()
    assert result.skipped == len(MALFORMED)
    assert any("bad/not-json.json: not JSON" in p for p in result.problems)
    assert _osv_ids(scanned["tc-debian:1"]) == DEBIAN_AFFECTED
    assert _osv_ids(scanned["tc-alpine:1"]) == ALPINE_AFFECTED
    shadow = ImageAdvisory.objects.get(advisory__osv_id="DSA-TC-0005")
    assert (shadow.package, shadow.installed, shadow.fixed) == (
        "shadow",
        "1:4.13+dfsg1-1+deb12u1",
        "1:4.13+dfsg1-1+deb12u2",
    )
    assert ImageAdvisory.objects.get(advisory__osv_id="DSA-TC-0001").severity == "high"
    assert AuditEvent.objects.filter(action="compliance.run", object_type="compliance").exists()


def test_reimport_replaces_records_and_rematches_without_rescan(scanned, tmp_path, osv_zip):
    call_command("import_osv", str(osv_zip))
    assert "DSA-TC-0001" in _osv_ids(scanned["tc-debian:1"])
    # The advisory is corrected upstream: the fix was already in the installed version.
    fixed = dict(RECORDS[0])
    fixed["affected"] = [
        {
            "package": {"ecosystem": "Debian:12", "name": "openssl"},
            "ranges": [
                {
                    "type": "ECOSYSTEM",
                    "events": [{"introduced": "0"}, {"fixed": "3.0.19-1~deb12u1"}],
                }
            ],
        }
    ]
    path = tmp_path / "update.zip"
    import zipfile

    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("DSA-TC-0001.json", json.dumps(fixed))
    before = scanned["tc-debian:1"].scanned_at
    call_command("import_osv", str(path))
    assert "DSA-TC-0001" not in _osv_ids(scanned["tc-debian:1"])
    assert Advisory.objects.filter(osv_id="DSA-TC-0001").count() == 1
    scanned["tc-debian:1"].refresh_from_db()
    assert scanned["tc-debian:1"].scanned_at == before  # matched again, not read again


def test_not_an_archive_is_refused(db, tmp_path):
    path = tmp_path / "osv.zip"
    path.write_text("this is not a zip")
    with pytest.raises(CommandError, match="must be a zip archive"):
        call_command("import_osv", str(path))
    assert not OsvImport.objects.exists()


def test_api_upload_and_advisories_per_image_and_container(
    api, scanned, osv_zip, teams, host, make_container
):
    upload = SimpleUploadedFile("osv.zip", Path(osv_zip).read_bytes())
    assert (
        api("developer").post("/api/v1/compliance/osv-imports/", {"file": upload}).status_code
        == 403
    )
    garbage = SimpleUploadedFile("osv.zip", b"not a zip at all")
    response = api("admin").post("/api/v1/compliance/osv-imports/", {"file": garbage})
    assert response.status_code == 400 and "zip" in response.json()["error"]["message"]
    failed = AuditEvent.objects.filter(action="compliance.run", outcome="failed").last()
    assert "zip" in failed.reason
    upload = SimpleUploadedFile("osv.zip", Path(osv_zip).read_bytes())
    response = api("admin").post("/api/v1/compliance/osv-imports/", {"file": upload})
    assert response.status_code == 201, response.content
    assert response.json()["skipped"] == len(MALFORMED)
    assert response.json()["matches"] == len(DEBIAN_AFFECTED) + len(ALPINE_AFFECTED)

    debian = scanned["tc-debian:1"].image
    body = api("developer").get(f"/api/v1/compliance/advisories/?image={debian.pk}").json()
    assert {r["osv_id"] for r in body["results"]} == DEBIAN_AFFECTED
    spec_container = make_container(teams["alpha"], "tc-on-alpine")
    spec_container.spec = {**spec_container.spec, "image": "tc-alpine:1"}
    spec_container.save()
    body = (
        api("developer")
        .get(f"/api/v1/compliance/advisories/?container={spec_container.pk}&severity=high")
        .json()
    )
    assert [r["osv_id"] for r in body["results"]] == ["ALPINE-TC-0001"]
    assert body["results"][0]["fixed"] == "3.1.4-r5"
    assert (
        api("developer").get("/api/v1/compliance/advisories/?container=999999").status_code == 404
    )


def test_dashboard_import_and_images_panel(page, scanned, osv_zip):
    viewer = page("viewer")
    upload = SimpleUploadedFile("osv.zip", Path(osv_zip).read_bytes())
    assert viewer.post("/compliance/osv/", {"file": upload}).status_code == 403
    admin = page("admin")
    upload = SimpleUploadedFile("osv.zip", Path(osv_zip).read_bytes())
    response = admin.post("/compliance/osv/", {"file": upload}, HTTP_REFERER="/compliance/")
    assert response.status_code == 302
    html = viewer.get("/compliance/").content.decode()
    assert "tc-debian:1" in html and "osv.zip" in html and "4 skipped" in html
