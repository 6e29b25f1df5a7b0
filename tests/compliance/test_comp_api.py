"""The compliance API, command and page: runs, findings with filters and export, exceptions
(reason and expiry required, audited), scores per team, and who may do what."""

import csv
import io
import json
from datetime import timedelta

from django.core.management import call_command
from django.utils import timezone

from audit.models import AuditEvent
from compliance import services
from compliance.models import ComplianceRun
from tests.compliance.conftest import good_spec


def _privileged(make_container, team, name):
    spec = good_spec(name)
    spec["privileged"] = True
    return make_container(team, name, spec)


def test_run_and_findings_through_the_api(api, teams, good_image, make_container):
    mine = _privileged(make_container, teams["alpha"], "tc-priv-a")
    theirs = _privileged(make_container, teams["beta"], "tc-priv-b")
    assert api("viewer").post("/api/v1/compliance/runs/").status_code == 403
    assert api("developer").post("/api/v1/compliance/runs/").status_code == 403
    response = api("admin").post("/api/v1/compliance/runs/")
    assert response.status_code == 201, response.content
    run = response.json()
    assert run["failed"] >= 2 and run["score"] < 100
    assert AuditEvent.objects.filter(action="compliance.run", outcome="allowed").exists()
    assert AuditEvent.objects.filter(action="compliance.run", outcome="denied").count() == 2

    body = api("admin").get("/api/v1/compliance/findings/?check=container.privileged").json()
    assert {r["object_id"] for r in body["results"]} == {str(mine.pk), str(theirs.pk)}
    # The developer of alpha sees alpha's findings only.
    body = api("developer").get("/api/v1/compliance/findings/?object_type=container").json()
    assert {r["object_id"] for r in body["results"]} == {str(mine.pk)}
    body = api("admin").get("/api/v1/compliance/findings/?severity=critical").json()
    assert {r["severity"] for r in body["results"]} == {"critical"}
    bad = api("admin").get("/api/v1/compliance/findings/?severity=urgent")
    assert bad.status_code == 400 and "unknown severity" in json.dumps(bad.json())
    assert api("rando").get("/api/v1/compliance/findings/").status_code == 403

    scores = api("developer").get("/api/v1/compliance/scores/").json()
    assert [s["team_name"] for s in scores] == [teams["alpha"].name]
    assert 0 < scores[0]["score"] < 100
    trend = api("admin").get("/api/v1/compliance/scores/?trend=1").json()
    assert trend[-1]["run"] == run["id"]
    checks = api("viewer").get("/api/v1/compliance/checks/").json()
    assert any(c["id"] == "container.privileged" and c["cis"] == "5.4" for c in checks)

    exported = api("admin").get(
        "/api/v1/compliance/findings/?export=csv&check=container.privileged"
    )
    rows = list(csv.DictReader(io.StringIO(exported.content.decode())))
    assert {r["object_repr"] for r in rows} == {"tc-priv-a", "tc-priv-b"}


def test_exceptions_need_reason_and_expiry_and_are_audited(api, teams, good_image, make_container):
    container = _privileged(make_container, teams["alpha"], "tc-priv-x")
    services.run_compliance(trigger=ComplianceRun.Trigger.COMMAND)
    later = (timezone.now() + timedelta(days=30)).isoformat()
    base = {"check_id": "container.privileged", "object_type": "container"}
    base["object_id"] = str(container.pk)
    admin = api("admin")
    cases = [
        ({**base, "expires_at": later}, "reason"),
        ({**base, "reason": "vendor appliance"}, "expiry"),
        ({**base, "reason": "x", "expires_at": "2001-01-01T00:00:00Z"}, "future"),
        ({**base, "check_id": "nope", "reason": "x", "expires_at": later}, "unknown"),
        ({**base, "object_type": "image", "reason": "x", "expires_at": later}, "applies to"),
        ({**base, "object_id": "999999", "reason": "x", "expires_at": later}, "no container"),
        ({**base, "reason": "x", "expires_at": later, "extra": 1}, "unknown field"),
    ]
    for body, words in cases:
        response = admin.post("/api/v1/compliance/exceptions/", body, format="json")
        assert response.status_code in (400, 404), (body, response.content)
        assert words in json.dumps(response.json()), (words, response.json())
    ok = {**base, "reason": "vendor appliance needs it", "expires_at": later}
    # Beta's container is as missing as a container that does not exist, for alpha's developer.
    theirs = _privileged(make_container, teams["beta"], "tc-priv-beta")
    probe = {**ok, "object_id": str(theirs.pk)}
    response = api("developer").post("/api/v1/compliance/exceptions/", probe, format="json")
    assert response.status_code == 404, response.content
    # Developers hold no compliance.except.
    assert (
        api("developer").post("/api/v1/compliance/exceptions/", ok, format="json").status_code
        == 403
    )
    response = admin.post("/api/v1/compliance/exceptions/", ok, format="json")
    assert response.status_code == 201, response.content
    exc_id = response.json()["id"]
    event = AuditEvent.objects.filter(action="compliance.except", outcome="allowed").last()
    assert event.object_id == str(exc_id) and event.summary["reason"] == ok["reason"]

    run = services.run_compliance(trigger=ComplianceRun.Trigger.COMMAND)
    finding = run.findings.get(check_id="container.privileged", object_id=str(container.pk))
    assert finding.excepted and finding.exception_id == exc_id
    open_only = admin.get(
        f"/api/v1/compliance/findings/?excepted=false&object_type=container&object_id={container.pk}"
    )
    # Privileged also keeps the host's user namespace: that finding has no exception.
    checks = {f["check_id"] for f in open_only.json()["results"]}
    assert checks == {"container.user-namespace"}, open_only.json()

    assert admin.post(f"/api/v1/compliance/exceptions/{exc_id}/revoke/").status_code == 200
    run = services.run_compliance(trigger=ComplianceRun.Trigger.COMMAND)
    assert not run.findings.get(
        check_id="container.privileged", object_id=str(container.pk)
    ).excepted


def test_command_prints_json(teams, good_image, make_container, capsys):
    _privileged(make_container, teams["alpha"], "tc-priv-cmd")
    call_command("compliance", "--format", "json")
    out = json.loads(capsys.readouterr().out)
    assert out["run"] and out["failed"] >= 1
    first = out["findings"][0]
    assert first["severity"] == "critical" and first["remediation"] and first["cis"] == "5.4"
    call_command("compliance")
    assert "container.privileged" in capsys.readouterr().out


def test_dashboard_page_export_and_run(page, teams, good_image, make_container):
    _privileged(make_container, teams["alpha"], "tc-priv-page")
    services.run_compliance(trigger=ComplianceRun.Trigger.COMMAND)
    viewer = page("viewer")
    html = viewer.get("/compliance/?severity=critical").content.decode()
    assert "tc-priv-page" in html and 'href="/compliance/"' in html
    assert "Run checks now" not in html
    assert page("rando").get("/compliance/").status_code == 403
    exported = viewer.get("/compliance/export.json?check=container.privileged")
    assert [r["object_repr"] for r in exported.json()] == ["tc-priv-page"]
    assert viewer.post("/compliance/run/").status_code == 403
    admin = page("admin")
    assert admin.post("/compliance/run/").status_code == 302
    assert ComplianceRun.objects.filter(trigger="manual").count() == 1
    response = admin.post(
        "/compliance/exceptions/",
        {
            "check_id": "container.privileged",
            "object_type": "container",
            "object_id": "1",
            "reason": "",
        },
        HTTP_REFERER="/compliance/",
    )
    assert response.status_code == 302  # back with the message
    assert "needs a reason" in " ".join(str(m) for m in response.wsgi_request._messages)


def test_dashboard_shows_rollout_plans_and_guards_them(page, host, teams, good_image):
    from compliance.models import Rollout

    rollout = Rollout.objects.create(
        host=host,
        team=teams["alpha"],
        old_image_row=good_image,
        old_image_id=good_image.image_id,
        target_ref="tc-good:1",
        plan=[{"container": 1, "name": "tc-planned", "state": "pending", "detail": ""}],
    )
    html = page("developer").get("/compliance/").content.decode()
    assert "tc-planned" in html and f"Start rollout {rollout.pk}" in html
    viewer_html = page("viewer").get("/compliance/").content.decode()
    assert "tc-planned" in viewer_html and "Start rollout" not in viewer_html
    assert page("viewer").post(f"/compliance/rollouts/{rollout.pk}/start/").status_code == 403
    assert page("viewer").post("/compliance/rollouts/", {"image": good_image.pk}).status_code == 403
    # The operator holds compliance.view everywhere: the plan is shown.
    assert "tc-planned" in page("operator").get("/compliance/").content.decode()


def test_rollout_skips_containers_removed_since_the_plan_and_starts_once(
    api, host, teams, good_image, make_container
):
    from compliance.models import Rollout
    from containers.models import Container
    from images.models import Image

    gone = make_container(teams["alpha"], "tc-gone")
    Container.objects.filter(pk=gone.pk).update(desired_state="removed", observed_state="removed")
    Image.objects.create(host=host, image_id="sha256:" + "7" * 64, repo_tags=["tc-good:1"])
    rollout = Rollout.objects.create(
        host=host,
        team=teams["alpha"],
        old_image_row=good_image,
        old_image_id=good_image.image_id,
        target_ref="tc-good:1",
        plan=[{"container": gone.pk, "name": "tc-gone", "state": "pending", "detail": ""}],
    )
    assert api("viewer").post(f"/api/v1/compliance/rollouts/{rollout.pk}/start/").status_code == 403
    response = api("developer").post(f"/api/v1/compliance/rollouts/{rollout.pk}/start/")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["state"] == "succeeded" and body["new_image_id"] == "sha256:" + "7" * 64
    assert body["plan"][0]["state"] == "skipped"
    again = api("developer").post(f"/api/v1/compliance/rollouts/{rollout.pk}/start/")
    assert again.status_code == 409 and "not planned" in again.json()["error"]["message"]
