"""Issue 16 on real containers: a stale name never joins another team's container.

Team A had `victim` and removed it; team B runs its own `victim` with a secret. A developer of
team A asks for `container:victim` in every namespace and as network mode: each request is
refused, and nothing new exists on the host. Joining the team's own running container works
and really shares its namespaces, bound by runtime id.
"""

import contextlib

import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.root]

TEAM_B = "e2e-beta"


@contextlib.contextmanager
def as_token(stack, token):
    """Call the API with another user's token for the duration of the block."""
    saved, stack.token = stack.token, token
    try:
        yield
    finally:
        stack.token = saved


@pytest.fixture(scope="module")
def developer_token(web):
    """A developer of the stack's team (A) only, with an API token; team B exists."""
    code = (
        "from accounts.models import ApiToken, Membership, Team, User; "
        "from rbac.models import Role, RoleBinding; "
        f"a = Team.objects.get(name={web.team!r}); Team.objects.get_or_create(name={TEAM_B!r}); "
        "u = User.objects.create_user(username='dev-a', password='dev-a-password-1'); "
        "Membership.objects.create(team=a, user=u); "
        "RoleBinding.objects.create(user=u, role=Role.objects.get(name='developer'), scope_team=a); "
        "print(ApiToken.issue(u, 'e2e-dev')[1])"
    )
    return web.manage("shell", "-c", code).stdout.strip().splitlines()[-1]


def _create(stack, team, name, command, **spec):
    body = {
        "team": team,
        "host": stack.host,
        "spec": {"image": "busybox", "name": name, "command": command, **spec},
    }
    return stack.api("POST", "containers/?wait=60", body)


def _running(stack, team, name, command, **spec):
    status, body = _create(stack, team, name, command, **spec)
    assert status == 200 and body["operation"]["state"] == "succeeded", body
    assert body["container"]["observed_state"] == "running", body
    return body["container"]


JOINS = {
    "pid": {"namespaces": {"pid": "container:victim"}},
    "ipc": {"namespaces": {"ipc": "container:victim"}},
    "uts": {"namespaces": {"uts": "container:victim"}},
    "cgroup": {"namespaces": {"cgroup": "container:victim"}},
    "network.mode": {"network": {"mode": "container:victim"}},
}


def test_a_stale_name_is_refused_for_every_namespace(web, developer_token):
    old = _running(web, web.team, "victim", ["sleep", "1000"], network={"mode": "none"})
    web.api("DELETE", f"containers/{old['id']}/?wait=60&force=1", expect=200)
    secret = ["sh", "-c", "echo team-b-secret > /tmp/secret; exec sleep 1000"]
    theirs = _running(web, TEAM_B, "victim", secret, network={"mode": "none"})
    on_host = {s["id"] for s in web.runtime().list()}
    assert theirs["runtime_id"] in on_host

    with as_token(web, developer_token):
        for kind, spec in JOINS.items():
            status, body = _create(web, web.team, f"spy-{kind.replace('.', '-')}", ["id"], **spec)
            assert status == 403, (kind, status, body)
            assert "'victim' was removed" in body["error"]["message"], body
    assert {s["id"] for s in web.runtime().list()} == on_host, "nothing new on the host"
    rows = web.sql("SELECT count(*) FROM containers_container WHERE name LIKE 'spy-%'")
    assert rows[0][0] == 0
    denied = web.sql(
        "SELECT count(*) FROM audit_auditevent WHERE action = 'container.create' "
        "AND outcome = 'denied' AND reason LIKE '%victim%'"
    )
    assert denied[0][0] >= len(JOINS)
    web.api("DELETE", f"containers/{theirs['id']}/?wait=60&force=1", expect=200)


def test_joining_the_teams_own_container_shares_its_namespaces(web, developer_token):
    with as_token(web, developer_token):
        mine = _running(web, web.team, "mine", ["sleep", "1001"], network={"mode": "none"})
        joiner = _running(
            web,
            web.team,
            "joiner",
            ["sleep", "1002"],
            namespaces={"pid": "container:mine", "uts": "container:mine"},
            network={"mode": "container:mine"},
        )
        _, row = web.api("GET", f"containers/{joiner['id']}/", expect=200)
        assert row["spec"]["namespaces"]["pid"] == f"container:{mine['runtime_id']}"
        assert row["spec"]["network"]["mode"] == f"container:{mine['runtime_id']}"
        # PID 1 of the joined namespace is the other container's program.
        status, out = web.api(
            "POST", f"containers/{joiner['id']}/exec/", {"command": ["cat", "/proc/1/cmdline"]}
        )
        assert status == 200 and out["output"].replace("\0", " ").strip() == "sleep 1001", out
        # Removing the target leaves the joiner unable to start again: it names an id, never a
        # name that another container might take later.
        web.api("DELETE", f"containers/{joiner['id']}/?wait=60&force=1", expect=200)
        web.api("DELETE", f"containers/{mine['id']}/?wait=60&force=1", expect=200)
