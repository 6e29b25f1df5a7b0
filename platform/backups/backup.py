"""Write one backup set: database dump, specs, images, each host's data, manifest last.

A set is written under `<target>/sets/.partial-<id>` and renamed to `<target>/sets/<id>` only
once its manifest is on disk, so an interrupted run (full disk, read-only target, a host dying
mid-copy) leaves no set that looks complete, and earlier sets are never touched.
"""

import errno
import json
import platform as pyplatform
import secrets
import shutil
import time
from pathlib import Path

import django
from django.utils import timezone
from registries import crypto

from audit import journal
from audit.models import ChainHead
from audit.services import append_journaled, record_event
from backups import conf, dbdump, hostwork, manifest, repo
from backups.models import BackupRun
from config.errors import InvalidRequest, PlatformError, Unavailable
from containers.models import Container
from containers.not_removed import NOT_REMOVED
from hosts.models import Host
from images.models import Image
from volumes.models import Volume

KEY_CHECK = "berth-backup-key-check"
OS_ERRORS = {
    errno.ENOSPC: "is full (no space left on device)",
    errno.EROFS: "is read-only",
    errno.EACCES: "is not writable (permission denied)",
    errno.EDQUOT: "is over its quota",
}


class TargetError(InvalidRequest):
    """The backup target cannot take a set (full, read-only, not writable)."""

    code = "backup_target"


def target_error(target: Path, err: OSError) -> TargetError:
    """A plain sentence for an OSError while writing to the target."""
    why = OS_ERRORS.get(err.errno, f"cannot be written ({err.strerror})")
    return TargetError(f"the backup target {target} {why}; earlier backups are unchanged")


def new_set_id() -> str:
    """Sortable by time, unique: 20261204T071500Z-3fa9."""
    return timezone.now().strftime("%Y%m%dT%H%M%SZ") + "-" + secrets.token_hex(2)


def parse_volumes(values) -> str | list[str]:
    """--volumes all | none | NAME...: 'all', 'none' or a list of names."""
    values = list(values or ["all"])
    if values in (["all"], ["none"]):
        return values[0]
    if "all" in values or "none" in values:
        raise InvalidRequest("--volumes takes 'all', 'none' or volume names, not a mix")
    return values


def _actor_fields(user) -> dict:
    if user is None:
        return {"actor": None, "reason": "manage.py (shell access to the server)"}
    return {"actor": user, "reason": "allowed by the gate"}


def _site(images: str) -> dict:
    """Containers' specs, hosts and images as the database holds them now."""
    containers = [
        {
            "id": c.pk,
            "name": c.name,
            "team": c.team.name,
            "host": c.host.name,
            "image": c.image,
            "desired_state": c.desired_state,
            "observed_state": c.observed_state,
            "spec": c.spec,
        }
        for c in Container.objects.select_related("team", "host").filter(NOT_REMOVED)
    ]
    hosts = [
        {"name": h.name, "address": h.address, "state": h.state, "removed": bool(h.revoked_at)}
        for h in Host.objects.order_by("name")
    ]
    image_refs = [
        {"host": i.host.name, "image_id": i.image_id, "repo_tags": i.repo_tags}
        for i in Image.objects.select_related("host").order_by("host__name", "image_id")
    ]
    return {"containers": containers, "hosts": hosts, "images": image_refs, "mode": images}


def _hosts_with_data(volumes, images="refs") -> list[Host]:
    live = Container.objects.filter(NOT_REMOVED).exclude(runtime_id="")
    ids = set(live.values_list("host_id", flat=True))
    if images == "blobs":
        ids |= set(Image.objects.values_list("host_id", flat=True))
    if volumes != "none":
        vols = Volume.objects.all() if volumes == "all" else Volume.objects.filter(name__in=volumes)
        ids |= set(vols.values_list("host_id", flat=True))
    return list(Host.objects.filter(pk__in=ids, revoked_at__isnull=True).order_by("name"))


def _check_hosts(hosts: list[Host]) -> None:
    down = [h.name for h in hosts if h.state != Host.State.UP]
    if down:
        raise Unavailable(
            f"host(s) {', '.join(down)} are not up; their volumes cannot be copied. "
            "Start their agents or remove the hosts, then run the backup again",
            code="host_down",
        )


def do_backup(
    *, to=None, volumes="all", images="refs", acting_user=None, trigger="command", run=None
) -> BackupRun:
    """Write one complete backup set; the run row says how it went (errors are raised too)."""
    if images not in ("refs", "blobs"):
        raise InvalidRequest("--images takes 'refs' or 'blobs'")
    volumes = parse_volumes([volumes] if isinstance(volumes, str) else volumes)
    target = Path(to or conf.target_dir()).resolve()
    set_id = new_set_id()
    if run is None:
        run = BackupRun.objects.create(trigger=trigger, set_id=set_id, created_by=acting_user)
    else:
        BackupRun.objects.filter(pk=run.pk).update(set_id=set_id)
        run.set_id = set_id
    who = _actor_fields(acting_user)
    record_event(
        actor=who["actor"],
        action="backup.run",
        outcome="allowed",
        reason=who["reason"],
        object_type="backup",
        object_id=run.pk,
        object_repr=set_id,
        summary={"target": str(target), "volumes": volumes, "images": images, "trigger": trigger},
    )
    started = time.monotonic()
    partial = target / "sets" / f".partial-{set_id}"
    try:
        result = _write_set(target, partial, set_id, volumes, images, acting_user)
    except (PlatformError, OSError) as err:
        shutil.rmtree(partial, ignore_errors=True)
        message = target_error(target, err).message if isinstance(err, OSError) else err.message
        _finish(run, started, error=message)
        raise (target_error(target, err) if isinstance(err, OSError) else err) from None
    _finish(run, started, path=str(result["path"]), size=result["size"], summary=result["summary"])
    return run


def _write_set(target, partial, set_id, volumes, images, user) -> dict:
    hosts = _hosts_with_data(volumes, images)
    _check_hosts(hosts)
    partial.mkdir(parents=True)
    location = conf.repository_for(target)
    repo.ensure(location)
    # The events waiting in this process's audit journal, and those dead processes left, in
    # the chain the set keeps (audit/journal.py; live processes' last 20 ms are not).
    journal.flush_pending()
    journal.recover_dead(append_journaled)
    head = ChainHead.objects.filter(pk=1).first()
    dump = dbdump.dump(partial)
    dumped_head = dbdump.read_head(dump)
    (partial / "site.json").write_text(json.dumps(_site(images), indent=1, sort_keys=True))
    ops = [
        hostwork.start(
            h,
            "backup.host",
            {"repository": location, "set": set_id, "volumes": volumes, "images": images},
            user=user,
        )
        for h in hosts
    ]
    done = hostwork.wait_all(ops)
    host_parts = {name: op.result for name, op in done.items()}
    data = {
        "set": set_id,
        "time": timezone.now().isoformat(),
        "versions": {
            "berth": _berth_version(),
            "django": django.get_version(),
            "python": pyplatform.python_version(),
            "restic": repo.run(location, "version").strip(),
        },
        "database": {"vendor": dbdump.vendor(), "file": dump.name},
        "audit_head": {
            "seq": dumped_head[0] if dumped_head else head.seq if head else 0,
            "hash": dumped_head[1] if dumped_head else head.last_hash if head else "",
        },
        "repository": location,
        "hosts": host_parts,
        "volumes": volumes,
        "images": images,
        # A token only this install's SECRET_KEY decrypts: a restore with other keys stops
        # before it touches anything, instead of restoring credentials nobody can read.
        "key_check": crypto.encrypt(KEY_CHECK),
    }
    written = manifest.write(partial, data)
    final = target / "sets" / set_id
    partial.rename(final)
    size = sum(p.stat().st_size for p in final.rglob("*") if p.is_file())
    size += sum(
        int(part.get("bytes_added") or 0) + int((part.get("images") or {}).get("bytes_added") or 0)
        for part in host_parts.values()
    )
    frozen = {name: part.get("frozen", {}) for name, part in host_parts.items()}
    summary = {
        "hosts": sorted(host_parts),
        "files": len(written["files"]),
        "snapshots": {name: part.get("snapshot") for name, part in host_parts.items()},
        "frozen_seconds": frozen,
        "audit_head": data["audit_head"],
    }
    return {"path": final, "size": size, "summary": summary}


def _berth_version() -> str:
    from importlib import metadata

    try:
        return metadata.version("berth")
    except metadata.PackageNotFoundError:
        return "0.1.0"


def _finish(run, started, *, error="", path="", size=0, summary=None) -> None:
    run.state = BackupRun.State.FAILED if error else BackupRun.State.SUCCEEDED
    run.error = error
    run.path = path
    run.size_bytes = size
    run.summary = summary or {}
    run.duration_seconds = round(time.monotonic() - started, 3)
    run.finished_at = timezone.now()
    run.save()
    record_event(
        actor=run.created_by,
        action="backup.run",
        outcome="failed" if error else "allowed",
        reason=error[:500] if error else "backup set written",
        object_type="backup",
        object_id=run.pk,
        object_repr=run.set_id,
        summary={"path": path, "size": size, "duration": run.duration_seconds},
    )
