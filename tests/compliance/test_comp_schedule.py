"""Scheduled rollouts: a team opts in (container.recreate on the team, audited), the window
(hours UTC, wrapping past midnight), and a pass that runs only the due teams' schedules, as the
user who opted in, audited. The rollout itself is the one tested end to end."""

from datetime import UTC, datetime

import pytest

from audit.models import AuditEvent
from compliance import schedule
from compliance.models import RolloutSchedule

pytestmark = pytest.mark.django_db
URL = "/api/v1/compliance/rollout-schedules/"


@pytest.mark.parametrize(
    ("start", "end", "inside", "outside"),
    [(2, 5, [2, 4], [1, 5, 23]), (22, 3, [22, 23, 0, 2], [3, 12, 21]), (7, 7, [0, 7, 23], [])],
)
def test_window(start, end, inside, outside):
    row = RolloutSchedule(window_start=start, window_end=end)
    assert all(row.in_window(h) for h in inside)
    assert not any(row.in_window(h) for h in outside)


def test_opt_in_needs_recreate_on_the_team_and_is_audited(api, teams, users):
    dev = api("developer")
    answer = dev.post(URL, {"team": teams["alpha"].name, "window_start": 1, "window_end": 4})
    assert answer.status_code == 201, answer.content
    assert answer.json()["acting_user"] == users["developer"].username
    # Again: the same row, changed.
    answer = dev.post(URL, {"team": str(teams["alpha"].pk), "window_end": 6, "pull": False})
    assert answer.status_code == 200 and answer.json()["window_end"] == 6
    assert RolloutSchedule.objects.count() == 1
    assert dev.post(URL, {"team": teams["beta"].name}).status_code == 403
    assert api("viewer").post(URL, {"team": teams["alpha"].name}).status_code == 403
    assert dev.post(URL, {"team": teams["alpha"].name, "window_start": 24}).status_code == 400
    assert dev.post(URL, {"team": "tc-nope"}).status_code == 404
    outcomes = list(
        AuditEvent.objects.filter(action="container.recreate", object_type="compliance")
        .order_by("seq")
        .values_list("outcome", flat=True)
    )
    assert outcomes[:2] == ["allowed", "allowed"] and "denied" in outcomes
    listed = api("viewer").get(URL).json()["results"]
    assert [s["team_name"] for s in listed] == [teams["alpha"].name]
    assert dev.delete(f"{URL}{listed[0]['id']}/").status_code == 204
    assert not RolloutSchedule.objects.exists()


def test_a_pass_runs_only_due_teams_and_is_audited(teams, users):
    RolloutSchedule.objects.create(
        team=teams["alpha"], window_start=2, window_end=4, acting_user=users["developer"]
    )
    RolloutSchedule.objects.create(
        team=teams["beta"], window_start=2, window_end=4, acting_user=users["admin"], enabled=False
    )
    assert schedule.run_due(datetime(2026, 12, 4, 5, tzinfo=UTC)) == {}
    done = schedule.run_due(datetime(2026, 12, 4, 3, tzinfo=UTC))
    # No containers: nothing to roll, nothing failed.
    assert done == {teams["alpha"].name: {"rollouts": [], "skipped": [], "errors": []}}
    event = AuditEvent.objects.filter(action="compliance.run").latest("seq")
    assert event.actor == users["developer"].username and "scheduled rollouts" in event.reason
    assert RolloutSchedule.objects.get(team=teams["alpha"]).last_run_at is not None


def test_dashboard_opt_in_and_out(page, teams, users):
    dev = page("developer")
    form = {"team": teams["alpha"].name, "window_start": "22", "window_end": "3", "pull": "on"}
    assert dev.post("/compliance/schedules/", form).status_code == 302
    row = RolloutSchedule.objects.get(team=teams["alpha"])
    assert (row.window_start, row.window_end, row.pull, row.acting_user) == (
        22,
        3,
        True,
        users["developer"],
    )
    assert page("viewer").post("/compliance/schedules/", form).status_code == 403
    # A bad hour: the dashboard says so and changes nothing.
    dev.post("/compliance/schedules/", form | {"window_end": "24"})
    assert RolloutSchedule.objects.get(team=teams["alpha"]).window_end == 3
    shown = dev.get("/compliance/").content.decode()
    assert "compliance-schedules" in shown and "22:00–3:00" in shown
    assert dev.post(f"/compliance/schedules/{row.pk}/remove/").status_code == 302
    assert not RolloutSchedule.objects.exists()
