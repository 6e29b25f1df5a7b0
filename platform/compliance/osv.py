"""Import an OSV export (the per-ecosystem zip of OSV JSON records) into Advisory rows.

Records are read one at a time from the zip; a malformed record is skipped and counted (with
its reason, the first 50 kept), the rest of the archive still goes in. An archive that is not
a zip is refused before anything is written. Records replace earlier ones with the same id.
"""

import json
import time
import zipfile
from datetime import datetime

from django.db import transaction

from compliance.models import Advisory, AffectedPackage, OsvImport
from config.errors import InvalidRequest

MAX_RECORD_BYTES = 8 * 1024 * 1024
MAX_MEMBERS = 500_000
MAX_PROBLEMS_KEPT = 50
BATCH = 2000
# Debian's urgency, GitHub's and others' severity words -> Berth's four (plus unknown).
SEVERITY_WORDS = {
    "unimportant": "low",
    "low": "low",
    "moderate": "medium",
    "medium": "medium",
    "high": "high",
    "important": "high",
    "critical": "critical",
}
SEVERITY_RANK = {"critical": 4, "high": 3, "medium": 2, "low": 1, "unknown": 0}


class BadRecord(ValueError):
    """A record that is not a usable OSV advisory."""


def _word(value) -> str:
    words = value.strip().lower().split() if isinstance(value, str) else []
    return SEVERITY_WORDS.get(words[0], "unknown") if words else "unknown"


def _severity(record: dict) -> str:
    """The worst severity or urgency the record (or one of its affected entries) states."""
    found = []
    holders = [record, *[a for a in record.get("affected") or [] if isinstance(a, dict)]]
    for holder in holders:
        for key in ("database_specific", "ecosystem_specific"):
            extra = holder.get(key)
            if isinstance(extra, dict):
                found += [_word(extra.get("severity")), _word(extra.get("urgency"))]
    return max(found, key=SEVERITY_RANK.get, default="unknown")


def _ranges(affected: dict) -> list[list[str]]:
    out = []
    for r in affected.get("ranges") or []:
        if not isinstance(r, dict):
            raise BadRecord("a range is not an object")
        if r.get("type") not in ("ECOSYSTEM", "SEMVER"):
            continue  # GIT ranges name commits, not package versions
        events = r.get("events")
        if not isinstance(events, list) or not events:
            raise BadRecord("a range without events")
        current = None
        for event in events:
            if not isinstance(event, dict) or len(event) != 1:
                raise BadRecord("a range event must hold exactly one of introduced/fixed/...")
            ((kind, value),) = event.items()
            if not isinstance(value, str):
                raise BadRecord(f"range event {kind} is not a string")
            if kind == "introduced":
                if current is not None:
                    out.append(current)
                current = [value, "", ""]
            elif kind in ("fixed", "last_affected", "limit"):
                if current is None:
                    current = ["0", "", ""]
                if kind == "fixed":
                    current[1] = value
                elif kind == "last_affected":
                    current[2] = value
                out.append(current)
                current = None
            else:
                raise BadRecord(f"unknown range event {kind!r}")
        if current is not None:
            out.append(current)
    return out


def parse_record(data: bytes):
    """(Advisory, [AffectedPackage]) unsaved, from one OSV JSON document; BadRecord if unusable."""
    try:
        record = json.loads(data)
    except (ValueError, UnicodeDecodeError) as err:
        raise BadRecord(f"not JSON: {err}") from None
    if not isinstance(record, dict):
        raise BadRecord("not a JSON object")
    osv_id = record.get("id")
    if not isinstance(osv_id, str) or not osv_id.strip() or len(osv_id) > 128:
        raise BadRecord("no id")
    affected = record.get("affected")
    if not isinstance(affected, list):
        raise BadRecord("no affected list")
    modified = None
    if isinstance(record.get("modified"), str):
        try:
            modified = datetime.fromisoformat(record["modified"].replace("Z", "+00:00"))
        except ValueError:
            raise BadRecord(f"modified is not a time: {record['modified']!r}") from None
    aliases = record.get("aliases") or []
    if not isinstance(aliases, list) or not all(isinstance(a, str) for a in aliases):
        raise BadRecord("aliases must be a list of strings")
    advisory = Advisory(
        osv_id=osv_id.strip(),
        summary=str(record.get("summary") or record.get("details") or "")[:500],
        aliases=aliases[:50],
        severity=_severity(record),
        modified=modified,
    )
    packages = []
    for entry in affected:
        if not isinstance(entry, dict) or not isinstance(entry.get("package"), dict):
            raise BadRecord("an affected entry without a package")
        package = entry["package"]
        ecosystem, name = package.get("ecosystem"), package.get("name")
        if not isinstance(ecosystem, str) or not isinstance(name, str) or not ecosystem or not name:
            raise BadRecord("a package without ecosystem or name")
        versions = entry.get("versions") or []
        if not isinstance(versions, list) or not all(isinstance(v, str) for v in versions):
            raise BadRecord("versions must be a list of strings")
        packages.append(
            AffectedPackage(
                ecosystem=ecosystem[:64],
                name=name[:200],
                ranges=_ranges(entry),
                versions=versions,
            )
        )
    return advisory, packages


def open_archive(path) -> zipfile.ZipFile:
    """The zip at `path`; InvalidRequest (400) when it is not one."""
    if not zipfile.is_zipfile(path):
        raise InvalidRequest("the OSV export must be a zip archive of OSV JSON records")
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as err:
        raise InvalidRequest(f"the OSV export is not a readable zip: {err}") from None
    if len(archive.infolist()) > MAX_MEMBERS:
        raise InvalidRequest(f"the OSV export has more than {MAX_MEMBERS} files")
    return archive


def _flush(batch, osv_import) -> None:
    ids = [advisory.osv_id for advisory, _ in batch]
    Advisory.objects.filter(osv_id__in=ids).delete()
    for advisory, _ in batch:
        advisory.imported_in = osv_import
    Advisory.objects.bulk_create([a for a, _ in batch], batch_size=BATCH)
    saved = dict(Advisory.objects.filter(osv_id__in=ids).values_list("osv_id", "pk"))
    rows = []
    for advisory, packages in batch:
        for package in packages:
            package.advisory_id = saved[advisory.osv_id]
            rows.append(package)
    AffectedPackage.objects.bulk_create(rows, batch_size=BATCH)


def import_archive(path, *, filename: str, acting_user=None) -> OsvImport:
    """Read every JSON record of the zip at `path`; returns the OsvImport with its counts."""
    started = time.perf_counter()
    archive = open_archive(path)
    osv_import = OsvImport.objects.create(filename=filename[:255], imported_by=acting_user)
    problems, batch, seen = [], [], {}
    records = skipped = 0

    def skip(name, reason):
        nonlocal skipped
        skipped += 1
        if len(problems) < MAX_PROBLEMS_KEPT:
            problems.append(f"{name}: {reason}")

    with archive, transaction.atomic():
        for info in archive.infolist():
            if info.is_dir() or not info.filename.endswith(".json"):
                continue
            records += 1
            if info.file_size > MAX_RECORD_BYTES:
                skip(info.filename, f"larger than {MAX_RECORD_BYTES} bytes")
                continue
            try:
                with archive.open(info) as member:
                    data = member.read(MAX_RECORD_BYTES + 1)
                advisory, packages = parse_record(data)
            except BadRecord as err:
                skip(info.filename, str(err))
                continue
            except (zipfile.BadZipFile, OSError, EOFError, RuntimeError) as err:
                skip(info.filename, f"unreadable in the archive: {err}")
                continue
            if advisory.osv_id in seen:
                skip(info.filename, f"id {advisory.osv_id} repeats {seen[advisory.osv_id]}")
                continue
            seen[advisory.osv_id] = info.filename
            batch.append((advisory, packages))
            if len(batch) >= BATCH:
                _flush(batch, osv_import)
                batch = []
        if batch:
            _flush(batch, osv_import)
        OsvImport.objects.filter(pk=osv_import.pk).update(
            records=records,
            imported=records - skipped,
            skipped=skipped,
            problems=problems,
            duration_ms=int((time.perf_counter() - started) * 1000),
        )
    osv_import.refresh_from_db()
    return osv_import
