"""Restore a whole site from one backup set onto a fresh install.

Order: check the set (every file's checksum, the operator's keys, the target install is
empty or --force, every host of the set has a host here), then the database, then each host's
volumes and containers (created from their specs, upper layers put back, the running ones
started). The audit chain is verified after the database is back and continues from its
head. Anything that did not come back is named in the answer and the run fails.
"""

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

from django.db import transaction
from django.utils import timezone
from registries import crypto
from registries.models import Registry

from accounts.models import ApiToken, Team
from audit.models import AuditEvent
from audit.services import record_event, verify_chain
from backups import dbdump, hostwork, manifest, repo
from backups.backup import KEY_CHECK
from backups.models import BackupRun
from config.errors import Conflict, InvalidRequest, PlatformError
from containers.models import Container
from containers.not_removed import NOT_REMOVED
from hosts.models import Host
from operations.models import Operation
from rbac.models import Role
from volumes.models import Volume

HOST_FIELDS = ("public_key", "queue", "address", "state", "last_heartbeat", "info")


class RestoreError(PlatformError):
    """A restore that stopped or did not bring everything back: the message says what."""

    status = 409
    code = "restore_failed"


@dataclass
class Plan:
    """What a restore would do, printed by --dry-run and followed otherwise."""

    set_dir: Path
    manifest: dict
    site: dict
    host_map: dict[str, str] = field(default_factory=dict)
    unmapped: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        """The plan in words."""
        m = self.manifest
        out = [
            f"backup set {m['set']} of {m['time']} ({m['database']['vendor']} database, "
            f"audit head #{m['audit_head']['seq']})",
            f"repository {m['repository']}",
        ]
        for old, new in sorted(self.host_map.items()):
            part = m["hosts"].get(old, {})
            cont = [c for c in self.site["containers"] if c["host"] == old]
            running = sum(1 for c in cont if c["desired_state"] in ("running", "paused"))
            images = part.get("images") or {}
            out.append(
                f"host {old} -> {new}: {len(part.get('volumes', {}))} volume(s), "
                f"{len(cont)} container(s) ({running} to start), "
                f"snapshot {part.get('snapshot') or '-'}"
                + (f", {images.get('count', 0)} image(s) from the set" if images else "")
            )
        for name in self.unmapped:
            out.append(f"host {name}: no data; its row is kept, down")
        return out


def parse_host_map(pairs) -> dict[str, str]:
    """OLD=NEW pairs into a dict; malformed pairs are a clear error."""
    out = {}
    for pair in pairs or []:
        old, sep, new = pair.partition("=")
        if not sep or not old or not new:
            raise InvalidRequest(f"--host-map takes OLD=NEW, not {pair!r}")
        out[old] = new
    return out


def install_is_empty() -> bool:
    """Only what bootstrap makes (the admin, the team "default", hosts): no other team, no
    token, custom role, container or volume."""
    return not (
        Team.objects.exclude(name="default").exists()
        or ApiToken.objects.exists()
        or Role.objects.filter(builtin=False).exists()
        or Container.objects.exists()
        or Volume.objects.exists()
    )


def plan(set_dir, host_map=None, *, force=False) -> Plan:
    """Check everything that can be checked before touching anything; the plan or an error."""
    set_dir = Path(set_dir).resolve()
    data = manifest.verify(set_dir)
    try:
        if crypto.decrypt(data.get("key_check") or "x") != KEY_CHECK:
            raise crypto.CredentialError("key check mismatch")
    except crypto.CredentialError:
        raise InvalidRequest(
            "this install's keys (DJANGO_SECRET_KEY) are not the ones the backup was made with: "
            "the registries' credentials would not decrypt. Start with the old install's key "
            "and restore again; nothing was changed",
            code="wrong_keys",
        ) from None
    if not force and not install_is_empty():
        raise Conflict(
            "this install is not empty (it has teams, tokens, containers or volumes); restoring "
            "would replace them. Use --force to replace them; nothing was changed"
        )
    site = json.loads((set_dir / "site.json").read_text())
    host_map = dict(host_map or {})
    here = {h.name for h in Host.objects.filter(revoked_at__isnull=True).exclude(public_key="")}
    old_names = {h["name"] for h in site["hosts"]}
    unknown = sorted(set(host_map) - old_names)
    if unknown:
        raise InvalidRequest(f"--host-map names host(s) not in the backup: {', '.join(unknown)}")
    needed = set(data["hosts"]) | {c["host"] for c in site["containers"]}
    result = Plan(set_dir, data, site)
    for old in sorted(old_names):
        new = host_map.get(old, old)
        if new != old and new in old_names and new not in host_map:
            raise InvalidRequest(f"cannot map {old} onto {new}: {new} is a host of the backup too")
        if new in here:
            result.host_map[old] = new
        elif old in needed:
            raise InvalidRequest(
                f"host {old} of the backup has data but no host {new} is enrolled here: join a "
                f"host and pass --host-map {old}=<its name>; nothing was changed"
            )
        else:
            result.unmapped.append(old)
    targets = list(result.host_map.values())
    if len(set(targets)) != len(targets):
        raise InvalidRequest("--host-map maps two hosts of the backup onto one host")
    location = data["repository"]
    known = repo.snapshots(location)
    for name, part in data["hosts"].items():
        for snap in (part.get("snapshot"), (part.get("images") or {}).get("snapshot")):
            # restic 0.14 names a new snapshot by its short id (a prefix of the full one).
            if snap and not any(full.startswith(snap) for full in known):
                raise InvalidRequest(
                    f"snapshot {snap[:12]} of host {name} is not in the repository {location}"
                )
    return result


def do_restore(the_plan: Plan, *, acting_user=None, check_repository=True) -> BackupRun:
    """Carry out a plan: database, fix-ups, each host's data; raise naming what failed."""
    started = time.monotonic()
    m = the_plan.manifest
    if check_repository:
        repo.check(m["repository"])
    fresh = {
        h.name: {f: getattr(h, f) for f in HOST_FIELDS}
        for h in Host.objects.filter(name__in=the_plan.host_map.values())
    }
    others = [h for h in Host.objects.all() if h.name not in the_plan.host_map.values()]
    dbdump.load(the_plan.set_dir / m["database"]["file"])
    problems, old_ids = _after_load(the_plan, fresh, others)
    run = BackupRun.objects.create(
        kind=BackupRun.Kind.RESTORE, set_id=m["set"], path=str(the_plan.set_dir)
    )
    record_event(
        actor=acting_user,
        action="backup.restore",
        outcome="allowed",
        reason="manage.py restore (shell access to the server)",
        object_type="backup",
        object_id=run.pk,
        object_repr=m["set"],
        summary={"hosts": the_plan.host_map, "audit_head": m["audit_head"]},
    )
    if problems:
        return _fail(
            run, started, "the audit chain of the backup is broken: " + "; ".join(problems)
        )
    failed = _restore_hosts(the_plan, old_ids)
    if failed:
        names = ", ".join(f"{k} ({v})" for k, v in sorted(failed.items()))
        return _fail(run, started, f"restored the database, but not: {names}"[:2000])
    bad = _undecryptable_registries()
    if bad:
        return _fail(run, started, f"registries whose credentials do not decrypt: {', '.join(bad)}")
    run.state = BackupRun.State.SUCCEEDED
    run.duration_seconds = round(time.monotonic() - started, 3)
    run.finished_at = timezone.now()
    run.summary = {"hosts": the_plan.host_map}
    run.save()
    return run


def _after_load(the_plan: Plan, fresh: dict, others: list) -> tuple[list[str], dict]:
    """Point the restored rows at this install's hosts; nothing of the old site runs on.
    Returns the audit chain's problems and the containers' old runtime ids ({pk: id}), which
    the hosts need to point joiners (`container:<id>`) at their targets' new ids."""
    m = the_plan.manifest
    with transaction.atomic():
        for old, new in the_plan.host_map.items():
            Host.objects.filter(name=old).update(
                name=new, revoked_at=None, cordoned=False, **fresh[new]
            )
        for host in others:
            # Hosts of this install the backup does not know (the control plane's own, spares):
            # kept enrolled with their keys.
            if not Host.objects.filter(name=host.name).exists():
                host.pk = None
                host.save(force_insert=True)
        Operation.objects.filter(state__in=["pending", "running"]).update(
            state="failed", error="interrupted: the site was restored from a backup"
        )
        BackupRun.objects.filter(set_id=m["set"], state="running").update(
            state="succeeded", finished_at=timezone.now(), error=""
        )
        live = Container.objects.filter(NOT_REMOVED)
        old_ids = {str(pk): rid for pk, rid in live.values_list("pk", "runtime_id") if rid}
        # "pending": the reconciler leaves rows to their create; the restore makes them.
        live.update(observed_state="pending", runtime_id="", pid=None, exit_code=None)
        Volume.objects.filter(host__name__in=the_plan.host_map.values()).update(state="pending")
    problems = verify_chain()
    if (
        not AuditEvent.objects.filter(hash=m["audit_head"]["hash"]).exists()
        and m["audit_head"]["seq"]
    ):
        problems.append(f"the manifest's audit head #{m['audit_head']['seq']} is not in the log")
    return problems, old_ids


def _restore_hosts(the_plan: Plan, old_ids: dict) -> dict[str, str]:
    m = the_plan.manifest
    ops = []
    for old, new in sorted(the_plan.host_map.items()):
        part = m["hosts"].get(old, {})
        host = Host.objects.get(name=new)
        has_containers = Container.objects.filter(host=host).filter(NOT_REMOVED)
        if not part and not has_containers.exists():
            continue
        params = {
            "repository": m["repository"],
            "snapshot": part.get("snapshot", ""),
            "volumes": part.get("volumes", {}),
            "uppers": part.get("uppers", {}),
            "images": part.get("images") or {},
            "runtime_ids": {
                pk: old_ids[pk]
                for pk in map(str, has_containers.values_list("pk", flat=True))
                if pk in old_ids
            },
        }
        ops.append(hostwork.start(host, "backup.restore_host", params))
    failed = {}
    try:
        done = hostwork.wait_all(ops)
    except PlatformError as err:
        return {"hosts": err.message}
    for name, op in done.items():
        for what, why in (op.result.get("failed") or {}).items():
            failed[f"{name}/{what}"] = why
    return failed


def _undecryptable_registries() -> list[str]:
    bad = []
    for reg in Registry.objects.exclude(password_encrypted=""):
        try:
            crypto.decrypt(reg.password_encrypted)
        except crypto.CredentialError:
            bad.append(reg.name)
    return bad


def _fail(run, started, message: str) -> BackupRun:
    run.state = BackupRun.State.FAILED
    run.error = message
    run.duration_seconds = round(time.monotonic() - started, 3)
    run.finished_at = timezone.now()
    run.save()
    record_event(
        action="backup.restore",
        outcome="failed",
        reason=message[:500],
        object_type="backup",
        object_id=run.pk,
        object_repr=run.set_id,
    )
    raise RestoreError(message)
