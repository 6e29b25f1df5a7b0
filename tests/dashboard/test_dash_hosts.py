"""Hosts page: add a host (join token shown once), cordon, uncordon, remove; only for those allowed."""

from audit.models import AuditEvent
from hosts.models import Host, JoinToken


def test_add_host_form_only_for_those_allowed(login, host):
    page = login("admin").get("/hosts/").content.decode()
    assert 'id="host-form"' in page and "Cordon" in page and "Remove" in page
    page = login("developer").get("/hosts/").content.decode()
    assert 'id="host-form"' not in page and "Cordon" not in page and "Remove" not in page


def test_admin_adds_a_host_and_sees_its_token_once(login):
    response = login("admin").post("/hosts/new/", {"name": "td-new", "hours": "2"})
    assert response.status_code == 200
    page = response.content.decode()
    host = Host.objects.get(name="td-new")
    assert host.state == "pending"
    assert "scripts/berth-agent --join http://testserver/ berth_join_" in page
    assert JoinToken.objects.filter(host=host, used_at__isnull=True).count() == 1
    assert AuditEvent.objects.filter(action="host.create", outcome="allowed").exists()
    # A taken name and a bad lifetime are refused with a message, nothing made.
    back = {"HTTP_REFERER": "http://testserver/hosts/", "follow": True}
    again = login("admin").post("/hosts/new/", {"name": "td-new"}, **back)
    assert b"a host named td-new exists" in again.content
    bad = login("admin").post("/hosts/new/", {"name": "td-x", "hours": "25"}, **back)
    assert not Host.objects.filter(name="td-x").exists() and b"expires_in" in bad.content


def test_a_developer_cannot_add_cordon_or_remove(login, host):
    client = login("developer")
    assert client.post("/hosts/new/", {"name": "td-dev"}).status_code == 403
    assert client.post(f"/hosts/{host.pk}/cordon/").status_code == 403
    assert client.post(f"/hosts/{host.pk}/remove/").status_code == 403
    host.refresh_from_db()
    assert not host.cordoned and host.revoked_at is None
    assert not Host.objects.filter(name="td-dev").exists()


def test_cordon_uncordon_and_remove_buttons(login, host):
    client = login("admin")
    client.post(f"/hosts/{host.pk}/cordon/")
    host.refresh_from_db()
    assert host.cordoned
    assert "Uncordon" in client.get("/hosts/").content.decode()
    client.post(f"/hosts/{host.pk}/uncordon/")
    host.refresh_from_db()
    assert not host.cordoned
    client.post(f"/hosts/{host.pk}/remove/")
    host.refresh_from_db()
    assert host.revoked_at is not None
    assert AuditEvent.objects.filter(action="host.delete", outcome="allowed").exists()
