"""The dashboard in headless Chromium against a real Berth: login, counts, a container's life
from the create form to removal (logs and a terminal echo on the way), RBAC in the browser."""

import json
import re

import pytest
from browser_helpers import shot

pytestmark = [pytest.mark.browser, pytest.mark.root]

FIND_IN_TERMINAL = """(needle) => {
  const t = window.berthTerminal; if (!t) return false;
  const b = t.buffer.active;
  for (let i = 0; i < b.length; i++) { const l = b.getLine(i); if (l && l.translateToString().includes(needle)) return true; }
  return false;
}"""


def api_container(stack, name, command=("sleep", "1000")):
    """A running container made through the REST API (as the admin)."""
    status, body = stack.api(
        "POST",
        "containers/?wait=60",
        {
            "team": stack.team,
            "host": stack.host,
            "spec": {
                "image": "busybox",
                "name": name,
                "command": list(command),
                "network": {"mode": "none"},
            },
        },
    )
    assert status == 200 and body["operation"]["state"] == "succeeded", body
    return body["container"]["id"]


def state_of(stack, pk):
    rows = stack.sql(
        "SELECT observed_state, desired_state FROM containers_container WHERE id = ?", pk
    )
    return rows[0] if rows else None


def test_login_page_and_a_wrong_password(browser, stack):
    context = browser.new_context()
    page = context.new_page()
    page.goto(stack.url + "/login/")
    shot(page, "login")
    page.fill("#id_username", "tb-viewer")
    page.fill("#id_password", "wrong")
    page.click("button[type=submit]")
    assert "Wrong username or password" in page.inner_text("#login-error")
    assert page.url.endswith("/login/")
    context.close()


def test_dashboard_counts_match_the_database(page_for, stack):
    api_container(stack, "tb-count")
    page = page_for("admin")
    page.wait_for_selector("#chart-states")
    rows = dict(
        stack.sql(
            "SELECT observed_state, count(*) FROM containers_container WHERE observed_state != 'removed' GROUP BY observed_state"
        )
    )
    shown = {
        el.get_attribute("data-count"): int(el.inner_text())
        for el in page.query_selector_all("[data-count]")
    }
    assert shown["total"] == sum(rows.values())
    assert shown["running"] == rows.get("running", 0)
    assert shown["stopped"] == rows.get("stopped", 0)
    assert shown["created"] == rows.get("created", 0)
    assert shown["paused"] == rows.get("paused", 0) and shown["ghost"] == rows.get("ghost", 0)
    # Chart.js drew the doughnut from the same numbers.
    drawn = page.evaluate("() => Chart.getChart('chart-states').data.datasets[0].data")
    assert drawn[0] == shown["running"]
    assert stack.host in page.inner_text("#hosts")
    shot(page, "dashboard")


def test_create_run_logs_terminal_stop_remove(page_for, stack):
    page = page_for("admin")
    page.click("text=Containers")
    page.click("#new-container")
    page.fill("#id_image", "busybox")
    page.fill("#id_name", "tb-web")
    page.fill("#id_command", "sh -c 'echo hello-from-browser; exec sleep 1000'")
    page.select_option("#id_team", label=stack.team)
    page.select_option("#id_host", label=f"{stack.host} — up")
    page.fill("#id_network", "none")
    page.fill("#id_memory", "64m")
    shot(page, "container-create")
    page.click("#create-submit")
    page.wait_for_url(re.compile(r"/containers/\d+/$"))
    pk = int(page.url.rstrip("/").rsplit("/", 1)[1])
    # htmx polls the state panel: it turns running without a reload.
    page.wait_for_selector("#state-badge .state-running", timeout=60_000)
    assert state_of(stack, pk)[0] == "running"
    page.wait_for_function(
        "() => document.getElementById('logs').textContent.includes('hello-from-browser')",
        timeout=30_000,
    )
    # Live stats reach the charts and the processes table lists the program.
    page.wait_for_function(
        "() => Chart.getChart('chart-mem').data.datasets[0].data.filter((v) => v > 0).length >= 2",
        timeout=30_000,
    )
    page.wait_for_function(
        "() => (document.getElementById('processes') || {}).textContent?.includes('sleep 1000')",
        timeout=30_000,
    )
    shot(page, "container-detail")

    page.click("#open-terminal")
    page.wait_for_selector("#terminal[data-state=ready]", timeout=30_000)
    page.click("#terminal")
    page.keyboard.type("echo tb-$((6*7))")
    page.keyboard.press("Enter")
    page.wait_for_function(FIND_IN_TERMINAL, arg="tb-42", timeout=20_000)
    page.keyboard.type("stty size")
    page.keyboard.press("Enter")
    cols = page.evaluate("() => window.berthTerminal.cols")
    page.wait_for_function(FIND_IN_TERMINAL, arg=f" {cols}", timeout=20_000)
    shot(page, "terminal")
    page.click("#terminal-detach")
    page.wait_for_selector("#terminal[data-state=detached]")
    ops = stack.sql(
        "SELECT state FROM operations_operation WHERE kind = 'container.terminal' AND target_id = ?",
        str(pk),
    )
    assert ops, "the terminal session left no Operation"
    audited = stack.sql(
        "SELECT count(*) FROM audit_auditevent WHERE action = 'container.exec' AND outcome = 'allowed' AND object_id = ?",
        str(pk),
    )
    assert audited[0][0] >= 1

    page.goto(f"{stack.url}/containers/{pk}/")
    page.click("button[data-action=stop]")
    page.wait_for_selector("#state-badge .state-stopped", timeout=60_000)
    page.click("button[data-action=remove]")
    page.wait_for_url(stack.url + "/containers/")
    stack.wait_until(
        lambda: state_of(stack, pk) in (None, ("removed", "removed")),
        60,
        "the container to be removed",
    )
    assert not [s for s in stack.runtime().list() if s["name"] == "tb-web"]
    shot(page, "containers")


def test_viewer_sees_no_action_buttons_and_a_forged_post_is_refused(page_for, stack):
    pk = api_container(stack, "tb-guarded")
    page = page_for("tb-viewer")
    page.goto(f"{stack.url}/containers/{pk}/")
    page.wait_for_selector("#state-badge .state-running")
    assert page.query_selector_all("button[data-action]") == []
    assert page.query_selector("#open-terminal") is None
    assert "New container" not in page.inner_text("main")
    # A forged POST with the viewer's own session and CSRF token.
    status = page.evaluate(
        """async (pk) => {
            const token = document.cookie.split('; ').find((c) => c.startsWith('csrftoken=')).split('=')[1];
            const r = await fetch(`/containers/${pk}/action/`, {method: 'POST', headers: {'X-CSRFToken': token,
              'Content-Type': 'application/x-www-form-urlencoded'}, body: 'action=remove', redirect: 'manual'});
            return r.status;
        }""",
        pk,
    )
    assert status == 403
    assert state_of(stack, pk) == ("running", "running")
    denied = stack.sql(
        "SELECT count(*) FROM audit_auditevent WHERE actor = 'tb-viewer' AND action = 'container.delete' AND outcome = 'denied'"
    )
    assert denied[0][0] == 1
    shot(page, "viewer-container-detail")


def test_admin_builds_a_role_and_the_users_view_changes(page_for, stack):
    pk = api_container(stack, "tb-role-target")
    rando = page_for("tb-rando")
    assert "Containers" not in rando.inner_text("nav.side")
    admin = page_for("admin")
    admin.goto(stack.url + "/manage/roles/new/")
    admin.fill("#role-name", "tb-stopper")
    admin.check("input[value='container.view']")
    admin.check("input[value='container.stop']")
    shot(admin, "role-create")
    admin.click("#role-submit")
    admin.wait_for_url(stack.url + "/manage/roles/")
    assert "tb-stopper" in admin.inner_text("#roles")
    shot(admin, "roles")
    admin.goto(stack.url + "/manage/bindings/")
    admin.select_option("select[name=subject]", label="tb-rando")
    admin.select_option("select[name=role]", label="tb-stopper")
    admin.select_option("select[name=scope]", value="global")
    admin.click("#binding-submit")
    admin.wait_for_url(stack.url + "/manage/bindings/")
    assert "user:tb-rando" in admin.inner_text("#bindings")
    shot(admin, "bindings")

    rando.reload()
    assert "Containers" in rando.inner_text("nav.side")
    rando.goto(f"{stack.url}/containers/{pk}/")
    rando.wait_for_selector("#state-badge .state-running")
    actions = [
        b.get_attribute("data-action") for b in rando.query_selector_all("button[data-action]")
    ]
    assert actions == ["stop"]
    shot(rando, "custom-role-user-view")


def test_other_pages_render(page_for, stack):
    page = page_for("admin")
    for path, name, selector in (
        ("/images/", "images", "#images"),
        ("/hosts/", "hosts", "#hosts"),
        ("/networks/", "networks", "#networks"),
        ("/volumes/", "volumes", "#volumes"),
        ("/manage/users/", "users", "#users"),
        ("/manage/tokens/", "tokens", "#tokens"),
        ("/manage/audit/", "audit", "table.audit"),
    ):
        page.goto(stack.url + path)
        page.wait_for_selector(selector)
        shot(page, name)
    page.goto(stack.url + "/manage/audit/?action=auth.login")
    assert "auth.login" in page.inner_text("table.audit")
    assert (
        json.loads(
            page.evaluate(
                "() => JSON.stringify(document.querySelectorAll('table.audit tbody tr').length)"
            )
        )
        > 0
    )


def test_attach_to_a_tty_container(page_for, stack):
    status, body = stack.api(
        "POST",
        "containers/?wait=60",
        {
            "team": stack.team,
            "host": stack.host,
            "spec": {
                "image": "busybox",
                "name": "tb-tty",
                "command": ["sh"],
                "tty": True,
                "stdin_open": True,
                "network": {"mode": "none"},
            },
        },
    )
    assert status == 200 and body["operation"]["state"] == "succeeded", body
    pk = body["container"]["id"]
    page = page_for("admin")
    page.goto(f"{stack.url}/containers/{pk}/terminal/?mode=attach")
    page.wait_for_selector("#terminal[data-state=ready]", timeout=30_000)
    page.click("#terminal")
    page.keyboard.type("echo at-$((2+3))")
    page.keyboard.press("Enter")
    page.wait_for_function(FIND_IN_TERMINAL, arg="at-5", timeout=20_000)
    shot(page, "terminal-attach")
    # Detaching leaves the container running.
    page.click("#terminal-detach")
    page.wait_for_selector("#terminal[data-state=detached]")
    assert state_of(stack, pk)[0] == "running"
    assert stack.runtime().state("tb-tty")["status"] == "running"


def test_list_follows_state_changes_without_reload(page_for, stack):
    pk = api_container(stack, "tb-live")
    page = page_for("admin")
    page.goto(stack.url + "/containers/?q=tb-live")
    row = f"#container-rows tr[data-id='{pk}']"
    page.wait_for_selector(f"{row} .state-running")
    page.evaluate("() => { window.berthNoReload = true; }")
    status, body = stack.api("POST", f"containers/{pk}/stop/?wait=60", {"timeout": 1})
    assert status == 200 and body["operation"]["state"] == "succeeded", body
    # htmx polls the rows every 5 s: the badge changes and the page was not reloaded.
    page.wait_for_selector(f"{row} .state-stopped", timeout=20_000)
    assert page.evaluate("() => window.berthNoReload") is True
