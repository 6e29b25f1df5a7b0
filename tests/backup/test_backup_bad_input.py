"""Bad input for backups and restores: a clear error, earlier sets still valid, nothing
half-done without saying so. No agent runs here (hosts with data would wait for one)."""

import os
from datetime import datetime

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import override_settings

from audit.models import AuditEvent
from backups import dbdump, hostwork, manifest, retention
from backups.backup import TargetError, do_backup
from backups.models import BackupRun
from config.errors import HostTimeout, Unavailable
from hosts.models import Host
from operations.models import Operation
from volumes.models import Volume

pytestmark = pytest.mark.django_db


def _set(tmp_path, password):
    run = do_backup(to=tmp_path / "target")
    assert run.state == BackupRun.State.SUCCEEDED, run.error
    return run


def test_backup_writes_a_verifiable_set(tmp_path, password):
    run = _set(tmp_path, password)
    data = manifest.verify(run.path)
    assert set(data["files"]) == {dbdump.dump_name(), "site.json"}
    assert data["audit_head"]["seq"] > 0 and len(data["audit_head"]["hash"]) == 64
    assert not list((tmp_path / "target" / "sets").glob(".partial-*"))
    actions = list(AuditEvent.objects.filter(action="backup.run").values_list("outcome", flat=True))
    assert actions == ["allowed", "allowed"]


def test_missing_or_altered_file_is_named(tmp_path, password):
    run = _set(tmp_path, password)
    site = os.path.join(run.path, "site.json")
    with open(site, "a") as f:
        f.write(" ")
    with pytest.raises(manifest.SetInvalid, match="site.json does not match its checksum"):
        manifest.verify(run.path)
    os.unlink(site)
    with pytest.raises(manifest.SetInvalid, match="missing site.json"):
        manifest.verify(run.path)
    with pytest.raises(CommandError, match="missing site.json"):
        call_command("restore", run.path, "--dry-run")


def test_full_target_fails_clearly_and_keeps_the_earlier_set(tmp_path, password, small_mount):
    where = small_mount(2048)
    first = do_backup(to=where)
    assert first.state == "succeeded", first.error
    # Fill the target: the next set cannot be written.
    with open(where / "filler", "wb") as f, pytest.raises(OSError):
        while True:
            f.write(b"\0" * 65536)
    with pytest.raises((TargetError, Unavailable), match="full"):
        do_backup(to=where)
    failed = BackupRun.objects.filter(state="failed").get()
    assert "full" in failed.error
    assert AuditEvent.objects.filter(action="backup.run", outcome="failed").exists()
    manifest.verify(first.path)
    assert not list((where / "sets").glob(".partial-*"))


def test_read_only_target_fails_clearly(tmp_path, password, small_mount):
    where = small_mount(1024, ro=True)
    with pytest.raises(CommandError, match="read-only"):
        call_command("backup", "--to", str(where))


def test_missing_password_file_is_named(tmp_path, password):
    password.unlink()
    with pytest.raises(CommandError, match="no backup password file"):
        call_command("backup", "--to", str(tmp_path / "t"))


def test_a_host_that_is_down_stops_the_backup(tmp_path, password, teams, host):
    earlier = _set(tmp_path, password)
    Volume.objects.create(team=teams["alpha"], host=host, name="tb-v")
    Host.objects.filter(pk=host.pk).update(state=Host.State.DOWN)
    with pytest.raises(Unavailable, match=f"{host.name} are not up"):
        do_backup(to=tmp_path / "target")
    manifest.verify(earlier.path)
    assert not list((tmp_path / "target" / "sets").glob(".partial-*"))


def test_a_host_dying_mid_backup_is_named_and_called_off(tmp_path, password, host):
    op = hostwork.start(host, "backup.host", {"repository": str(tmp_path / "r")})
    with pytest.raises(HostTimeout, match=f"host {host.name} did not finish"):
        hostwork.wait_all([op], timeout=0.5)
    assert Operation.objects.get(pk=op.pk).state == "failed"


def test_restore_into_a_non_empty_install_needs_force(tmp_path, password, teams):
    run = _set(tmp_path, password)
    with pytest.raises(CommandError, match="not empty.*--force"):
        call_command("restore", run.path, "--dry-run")
    call_command("restore", run.path, "--dry-run", "--force")


def test_restore_with_other_keys_is_refused_before_anything(tmp_path, password):
    run = _set(tmp_path, password)
    before = AuditEvent.objects.count()
    with (
        override_settings(SECRET_KEY="another-install-key-" + "x" * 40),
        pytest.raises(CommandError, match="keys .* are not the ones"),
    ):
        call_command("restore", run.path)
    assert AuditEvent.objects.count() == before


def test_host_map_must_name_hosts_of_the_backup(tmp_path, password):
    run = _set(tmp_path, password)
    with pytest.raises(CommandError, match="OLD=NEW"):
        call_command("restore", run.path, "--host-map", "nonsense")
    with pytest.raises(CommandError, match="not in the backup: ghost"):
        call_command("restore", run.path, "--host-map", "ghost=h9", "--dry-run")


def test_retention_keeps_daily_then_weekly():
    days = [datetime(2026, 12, d, 3) for d in range(1, 31)]
    names = [(d.strftime("%Y%m%dT%H%M%SZ"), d) for d in days]
    keep = retention.choose(names, daily=7, weekly=2)
    assert len(keep) == 9
    # Seven days (24-30), then the newest of the two weeks before them (the 20th and 13th).
    wanted = {n for n, d in names if d.day >= 24 or d.day in (20, 13)}
    assert keep == wanted


def test_unknown_images_mode_is_refused(tmp_path, password):
    from config.errors import InvalidRequest

    with pytest.raises(InvalidRequest, match="--images takes 'refs' or 'blobs'"):
        do_backup(to=tmp_path / "t", images="layers")
    assert not (tmp_path / "t").exists()


def test_scheduled_backup_writes_a_set_then_applies_retention(tmp_path, password, monkeypatch):
    from backups.tasks import scheduled_backup

    target = tmp_path / "sched"
    old = target / "sets" / "20200101T030000Z-aaaa"
    old.mkdir(parents=True)
    (old / "manifest.json").write_text("{}")
    monkeypatch.setenv("BERTH_BACKUP_DIR", str(target))
    # Keep one day's set: the one just written; the older one goes.
    monkeypatch.setenv("BERTH_BACKUP_KEEP_DAILY", "1")
    monkeypatch.setenv("BERTH_BACKUP_KEEP_WEEKLY", "0")
    done = scheduled_backup()
    assert done["state"] == "succeeded" and done["removed"] == [old.name]
    assert BackupRun.objects.get().trigger == "schedule"
    manifest.verify(target / "sets" / done["set"])


def test_a_failing_scheduled_backup_is_an_alarm(tmp_path, password, monkeypatch):
    from backups import status
    from backups.tasks import scheduled_backup

    password.unlink()
    monkeypatch.setenv("BERTH_BACKUP_DIR", str(tmp_path / "sched"))
    assert scheduled_backup()["state"] == "failed"
    assert status.overview()["alarm"] is True
    assert AuditEvent.objects.filter(action="backup.run", outcome="failed").exists()
