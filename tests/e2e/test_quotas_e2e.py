"""Concurrent creates against a team quota on a served Berth: only as many as fit succeed."""

import concurrent.futures
import json

import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.root]


def test_concurrent_creates_never_pass_the_quota(web):
    team = "e2e-quota"
    web.manage(
        "shell", "-c", f"from accounts.models import Team; Team.objects.create(name={team!r})"
    )
    web.sql_write(
        "UPDATE accounts_team SET quotas = ? WHERE name = ?", json.dumps({"containers": 3}), team
    )

    def create(i):
        body = {
            "team": team,
            "host": web.host,
            "start": False,
            "spec": {"image": "busybox", "name": f"q{i}", "network": {"mode": "none"}},
        }
        return web.api("POST", "containers/", body)

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(create, range(8)))
    codes = sorted(status for status, _ in answers)
    assert codes == [202] * 3 + [403] * 5, answers
    refused = [body for status, body in answers if status == 403]
    assert all("containers: team e2e-quota's quota is 3" in b["error"]["message"] for b in refused)
    rows = web.sql(
        "SELECT count(*) FROM containers_container c JOIN accounts_team t ON t.id = c.team_id "
        "WHERE t.name = ?",
        team,
    )
    assert rows[0][0] == 3
    for status, body in answers:
        if status == 202:
            web.api("DELETE", f"containers/{body['container']['id']}/?wait=60&force=1")
