"""Who sees and runs backups: backup.view / backup.run are admin-only by default, on the API and
the dashboard alike, and every decision is in the audit log."""

import pytest
from django.test import Client
from rest_framework.test import APIClient

from audit.models import AuditEvent
from backups.models import BackupRun

pytestmark = pytest.mark.django_db


def _api(user):
    client = APIClient()
    client.force_login(user)
    return client


def test_admin_lists_runs_and_status(users):
    BackupRun.objects.create(state="failed", error="the backup target /x is full")
    client = _api(users["admin"])
    answer = client.get("/api/v1/backups/")
    assert answer.status_code == 200 and answer.json()["count"] == 1
    status = client.get("/api/v1/backups/status/").json()
    assert status["alarm"] is True and status["last_success"] is None and status["next_run"]


@pytest.mark.parametrize("name", ["developer", "operator", "viewer", "rando"])
def test_others_may_not_view_or_run(users, name):
    client = _api(users[name])
    assert client.get("/api/v1/backups/").status_code == 403
    assert client.post("/api/v1/backups/", {}, format="json").status_code == 403
    assert not BackupRun.objects.exists()
    assert AuditEvent.objects.filter(action="backup.run", outcome="denied").exists()


def test_unknown_fields_are_refused(users):
    answer = _api(users["admin"]).post("/api/v1/backups/", {"bogus": 1}, format="json")
    assert answer.status_code == 400
    assert not BackupRun.objects.exists()


def test_admin_queues_a_backup(users):
    answer = _api(users["admin"]).post("/api/v1/backups/", {"volumes": ["v1"]}, format="json")
    assert answer.status_code == 202, answer.content
    assert answer.json()["state"] == "running"
    assert AuditEvent.objects.filter(action="backup.run", outcome="allowed").exists()


def test_dashboard_page(users):
    BackupRun.objects.create(state="failed", error="the backup target /x is full")
    admin = Client()
    admin.force_login(users["admin"])
    page = admin.get("/backups/")
    assert page.status_code == 200
    assert b"backup-alarm" in page.content and b"is full" in page.content
    assert b'href="/backups/"' in admin.get("/").content
    dev = Client()
    dev.force_login(users["developer"])
    assert dev.get("/backups/").status_code == 403
    assert b'href="/backups/"' not in dev.get("/").content
