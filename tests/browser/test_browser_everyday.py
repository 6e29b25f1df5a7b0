"""Issue 23 in headless Chromium, as the roles that use each page: home counts, hidden links,
the role-name pattern, favicon, skip link, a failed pull, the phone layout, host pickers and
the container pages. Every page is shot at 390x844 and 1440x900 and checked with axe-core."""

import re

import berth_e2e_stack as e2e  # loaded by this folder's conftest
import pytest
from a11y import PHONE, axe_violations, check_sizes, page_width, too_wide

pytestmark = [pytest.mark.browser, pytest.mark.root]


def create(stack, name, *, start=True, command=("sleep", "1000"), network=None):
    """A container made through the REST API as the admin; returns its id."""
    status, body = stack.api(
        "POST",
        "containers/?wait=60",
        {
            "team": stack.team,
            "host": stack.host,
            "start": start,
            "spec": {
                "image": "busybox",
                "name": name,
                "command": list(command),
                "network": network or {"mode": "none"},
            },
        },
    )
    assert status == 200 and body["operation"]["state"] == "succeeded", body
    return body["container"]["id"]


def listed_total(page) -> int:
    return int(re.search(r"· (\d+) containers", page.inner_text(".pager")).group(1))


def test_home_counts_match_the_list_and_the_page_is_accessible(as_role, stack):
    create(stack, "tb-e-run")
    create(stack, "tb-e-made", start=False)
    page = as_role("admin")
    page.goto(stack.url + "/")
    page.wait_for_selector("#chart-states")
    for state in ("running", "stopped", "created"):
        shown = int(page.inner_text(f"[data-count={state}]"))
        page.click(f"a.card:has([data-count={state}])")
        page.wait_for_url(re.compile(rf"state={state}"))
        assert listed_total(page) == shown, state
        page.go_back()
    # Created per day counts what exists (removed rows are history, not containers).
    live = stack.sql(
        "SELECT count(*) FROM containers_container WHERE observed_state != 'removed'"
        " AND created_at >= datetime('now', '-1 day')"
    )[0][0]
    drawn = page.evaluate("() => Chart.getChart('chart-activity').data.datasets[0].data")
    assert drawn[-1] <= live
    # A favicon of our own (no 404 on first load) and a skip link as the first Tab stop.
    icon = page.get_attribute("link[rel=icon]", "href")
    assert page.evaluate("async (u) => (await fetch(u)).status", icon) == 200
    page.keyboard.press("Tab")
    assert page.evaluate("() => document.activeElement.className") == "skip"
    page.keyboard.press("Enter")
    assert page.evaluate("() => document.activeElement.id") == "main"
    check_sizes(page, stack.url, "home")


def test_viewer_sees_no_pull_link(as_role, stack):
    page = as_role("tb-viewer")
    page.goto(stack.url + "/images/")
    page.wait_for_selector("#images")
    assert page.query_selector("#image-pull-link") is None
    check_sizes(page, stack.url, "viewer-images")
    admin = as_role("admin")
    admin.goto(stack.url + "/images/")
    assert admin.query_selector("#image-pull-link") is not None


def test_role_name_pattern_works_in_chromium(as_role, stack):
    page = as_role("admin")
    page.console_errors.clear()
    page.goto(stack.url + "/manage/roles/new/")
    page.fill("#role-name", "bad name!")
    assert page.evaluate("() => document.getElementById('role-name').validity.patternMismatch")
    page.fill("#role-name", "good-name_1")
    assert page.evaluate("() => document.getElementById('role-name').validity.valid")
    assert not [e for e in page.console_errors if "pattern" in e], page.console_errors
    check_sizes(page, stack.url, "role-form")


def test_a_failed_pull_says_so_and_offers_retry_and_back(as_role, stack):
    page = as_role("admin")
    page.goto(stack.url + "/images/pull/")
    ref = f"127.0.0.1:{e2e.free_port()}/tb/nothing:1"
    page.fill("input[name=ref]", ref)
    page.click("#image-pull button[type=submit]")
    page.wait_for_url(re.compile(r"/operations/\d+/progress/"))
    page.wait_for_selector("#op-failed:not([hidden])", timeout=60_000)
    assert page.inner_text("#op-state") == "failed"
    assert page.inner_text("#op-error").strip()
    assert "Resolving" not in page.inner_text("#op-status")
    check_sizes(page, stack.url, "pull-failed")
    page.click("#op-retry")
    page.wait_for_url(re.compile(r"/images/pull/\?ref="))
    assert page.input_value("input[name=ref]") == ref
    page.go_back()
    page.click("#op-back")
    page.wait_for_url(stack.url + "/images/")


def test_phone_layout_navigation_tables_and_terminal(as_role, stack):
    pk = create(stack, "tb-e-phone")
    page = as_role("admin")
    page.set_viewport_size(PHONE)
    page.goto(stack.url + "/containers/")
    assert not page.is_visible("#nav-links a[href='/containers/']")
    page.click("#nav-toggle")
    assert page.get_attribute("#nav-toggle", "aria-expanded") == "true"
    assert page.is_visible("#nav-links a[href='/containers/']")
    page.screenshot(path=str(_art("nav-open-390.png")))
    page.click("#nav-toggle")
    # The table scrolls inside itself; the page does not scroll sideways.
    assert page_width(page) <= PHONE["width"]
    for path in ("/containers/", "/hosts/", "/networks/", "/volumes/", "/manage/audit/"):
        page.goto(stack.url + path)
        assert page_width(page) <= PHONE["width"], (path, too_wide(page))
    # The narrowest phones the layout is meant for.
    page.set_viewport_size({"width": 360, "height": 740})
    for path in ("/", "/containers/", f"/containers/{pk}/", "/containers/new/"):
        page.goto(stack.url + path)
        assert page_width(page) <= 360, (path, too_wide(page))
    page.set_viewport_size(PHONE)
    page.goto(f"{stack.url}/containers/{pk}/terminal/")
    page.wait_for_selector("#terminal[data-state=ready]", timeout=30_000)
    box = page.eval_on_selector("#terminal", "(el) => el.getBoundingClientRect().right")
    assert box <= PHONE["width"]
    assert page.evaluate("() => window.berthTerminal.cols") >= 30
    page.screenshot(path=str(_art("terminal-390.png")))
    page.click("#terminal-detach")
    page.wait_for_selector("#terminal[data-state=detached]")


def _art(name):
    from browser_helpers import artifacts

    return artifacts() / name


def test_host_picker_defaults_to_an_up_host_and_disables_a_dead_one(as_role, stack):
    stack.sql_write(
        "INSERT INTO hosts_host (name, queue, address, state, info, created_at, public_key,"
        " cordoned) VALUES ('aa-tb-dead', 'host.aa-tb-dead', '', 'down', '{}',"
        " datetime('now'), '', 0)"
    )
    page = as_role("tb-dev")
    page.goto(stack.url + "/containers/new/")
    dead = page.query_selector("#id_host option[data-state=down]")
    assert dead is not None and dead.get_attribute("disabled") is not None
    assert "down" in dead.inner_text()
    chosen = page.eval_on_selector("#id_host", "(s) => s.selectedOptions[0].textContent")
    assert chosen.startswith(stack.host) and "up" in chosen
    check_sizes(page, stack.url, "create-form")


def test_container_page_as_a_developer(as_role, stack):
    for n in (10, 2, 1):
        create(stack, f"tb-n-{n}", start=False)
    pk = create(
        stack,
        "tb-e-ports",
        command=("sleep", "1000"),
        network={"mode": "bridge", "ports": [{"container_port": 80, "host_port": e2e.free_port()}]},
    )
    page = as_role("tb-dev")
    # Live inspect panel: state and PID as the agent reports them.
    page.goto(f"{stack.url}/containers/{pk}/")
    page.wait_for_selector("#inspect-state .state-running", timeout=30_000)
    page.wait_for_function(
        "() => /^\\d+$/.test(document.getElementById('inspect-pid').textContent.trim())"
    )
    assert "->80/tcp" in page.inner_text("#inspect-ports")
    check_sizes(page, stack.url, "container-detail")
    # Natural order and a ports column.
    page.goto(stack.url + "/containers/?q=tb-n-")
    names = [a.inner_text() for a in page.query_selector_all("#container-rows td a")]
    assert names == ["tb-n-1", "tb-n-2", "tb-n-10"]
    page.click("a.sort[data-sort=name]")
    page.wait_for_url(re.compile(r"sort=-name"))
    names = [a.inner_text() for a in page.query_selector_all("#container-rows td a")]
    assert names == ["tb-n-10", "tb-n-2", "tb-n-1"]
    page.goto(stack.url + "/containers/?q=tb-e-ports")
    assert "->80/tcp" in page.inner_text("#container-rows .ports")
    # Every lifecycle verb in bulk; select all and start the three.
    page.goto(stack.url + "/containers/?q=tb-n-")
    verbs = {b.get_attribute("value") for b in page.query_selector_all("#bulk-actions button")}
    assert {"start", "stop", "restart", "kill", "pause", "unpause", "remove"} <= verbs
    check_sizes(page, stack.url, "container-list")
    page.check("#select-page")
    page.click("#bulk-actions button[value=start]")
    page.wait_for_selector(".messages li.success")
    stack.wait_until(
        lambda: (
            stack.sql(
                "SELECT count(*) FROM containers_container WHERE name LIKE 'tb-n-%'"
                " AND observed_state = 'running'"
            )[0][0]
            == 3
        ),
        60,
        "the bulk start",
    )
    assert not axe_violations(page, stack.url)
    # Duplicate: the create form filled from this container's spec; every error at once.
    page.goto(f"{stack.url}/containers/{pk}/")
    page.click("#duplicate")
    page.wait_for_url(re.compile(r"/containers/new/\?from="))
    assert page.input_value("#id_name") == "tb-e-ports-copy"
    assert page.input_value("#id_command") == "sleep 1000"
    page.fill("#id_ports", "nope\n99999999")
    page.fill("#id_labels", "novalue")
    page.click("#create-submit")
    page.wait_for_selector("#create-errors")
    assert len(page.query_selector_all("#create-errors li")) >= 3
    check_sizes(page, stack.url, "create-errors")


def test_admin_onboards_edits_and_removes_people_teams_and_roles(as_role, stack):
    page = as_role("admin")
    # Onboarding: every error at once (Django's validators on), then one page does it all.
    page.goto(stack.url + "/manage/users/")
    page.click("#onboard-link")
    page.fill("#ob-username", "tb-new")
    page.fill("#ob-password", "password")
    page.select_option("#ob-team", label=stack.team)
    page.select_option("#ob-role", label="developer")
    page.click("#onboard-submit")
    assert "too common" in page.inner_text("#onboard-errors")
    check_sizes(page, stack.url, "onboard-errors")
    page.fill("#ob-password", "Harbour-lights-77")
    page.click("#onboard-submit")
    page.wait_for_url(stack.url + "/manage/users/")
    assert "tb-new" in page.inner_text("#users")
    check_sizes(page, stack.url, "users")
    rows = stack.sql(
        "SELECT count(*) FROM rbac_rolebinding b JOIN accounts_user u ON u.id = b.user_id"
        " WHERE u.username = 'tb-new' AND b.scope_team_id IS NOT NULL"
    )
    assert rows[0][0] == 1
    # Edit and reset the password (validated), then delete.
    page.click("a[data-user=tb-new]")
    page.fill("#ue-email", "new@example.test")
    page.fill("#ue-password", "12345678")
    page.click("#user-save")
    assert "numeric" in page.inner_text("#user-errors")
    check_sizes(page, stack.url, "user-edit")
    page.fill("#ue-password", "Another-harbour-88")
    page.click("#user-save")
    page.wait_for_url(stack.url + "/manage/users/")
    page.click("a[data-user=tb-new]")
    page.click("#user-delete")
    page.wait_for_url(stack.url + "/manage/users/")
    assert "tb-new" not in page.inner_text("#users")
    # Teams: a team in use says what blocks its deletion; an empty one goes.
    page.goto(stack.url + "/manage/teams/")
    page.click(f"button[data-team-delete='{stack.team}']")
    page.wait_for_selector(".messages li.error")
    assert "cannot be deleted" in page.inner_text(".messages") and "container" in page.inner_text(
        ".messages"
    )
    page.fill("#team-form input[name=name]", "tb-empty")
    page.click("#team-form button[type=submit]")
    page.fill("form[data-team-rename='tb-empty'] input[name=name]", "tb-empty2")
    page.click("form[data-team-rename='tb-empty'] button[type=submit]")
    page.wait_for_selector("button[data-team-delete='tb-empty2']")
    check_sizes(page, stack.url, "teams")
    page.click("button[data-team-delete='tb-empty2']")
    page.wait_for_selector(".messages li.success")
    assert "tb-empty2" not in page.inner_text("#teams")
    # Roles: duplicate a built-in one, edit the copy, delete it.
    page.goto(stack.url + "/manage/roles/")
    page.click("a[data-role-duplicate=viewer]")
    assert page.input_value("#role-name") == "viewer-copy"
    page.click("#role-submit")
    page.wait_for_url(stack.url + "/manage/roles/")
    page.click("a[data-role-edit=viewer-copy]")
    page.fill("#role-name", "tb-watcher")
    page.click("#role-submit")
    page.wait_for_url(stack.url + "/manage/roles/")
    check_sizes(page, stack.url, "roles")
    page.click("button[data-role-delete=tb-watcher]")
    page.wait_for_selector(".messages li.success")
    assert "tb-watcher" not in page.inner_text("#roles")


def test_admin_cancels_and_forgets_a_gone_host(as_role, stack):
    stack.sql_write(
        "INSERT INTO hosts_host (name, queue, address, state, info, created_at, public_key,"
        " cordoned) VALUES ('tb-gone', 'host.tb-gone', '', 'down', '{}', datetime('now'), '', 0)"
    )
    page = as_role("admin")
    page.goto(stack.url + "/hosts/")
    assert page.query_selector("button[data-host-forget='tb-gone']") is not None
    assert page.query_selector(f"button[data-host-forget='{stack.host}']") is None
    check_sizes(page, stack.url, "hosts")
    page.click("button[data-host-forget='tb-gone']")
    page.wait_for_selector(".messages li.success")
    assert "tb-gone" not in page.inner_text("#hosts")
    audited = stack.sql(
        "SELECT count(*) FROM audit_auditevent WHERE action = 'host.delete' AND outcome = 'allowed'"
    )
    assert audited[0][0] >= 1


def test_build_page_streams_the_log_and_shows_cache_use(as_role, stack):
    page = as_role("admin")
    page.goto(stack.url + "/images/")
    page.click("#image-build-link")
    check_sizes(page, stack.url, "build-form")
    dockerfile = 'FROM busybox\nARG GREETING\nRUN echo "$GREETING" > /greeting\n'
    for attempt in (1, 2):
        page.goto(stack.url + "/images/build/")
        page.fill("#build-dockerfile-text", dockerfile)
        page.fill("#build-tag", "tb-built:1")
        page.fill("#build-args", "GREETING=hello-build")
        page.click("#build-submit")
        page.wait_for_url(re.compile(r"/operations/\d+/progress/"))
        page.wait_for_selector("#op-done:not([hidden])", timeout=120_000)
        assert page.inner_text("#op-state") == "succeeded"
        assert "RUN" in page.inner_text("#op-log")
        hits = int(page.inner_text("#op-cache-hits"))
        # The second build of the same Dockerfile and arguments reuses the first one's steps.
        assert (hits == 0) if attempt == 1 else (hits >= 1), (attempt, hits)
    check_sizes(page, stack.url, "build-log")
    # Bad input: every problem at once, nothing sent.
    page.goto(stack.url + "/images/build/")
    page.fill("#build-args", "no-equals-sign")
    page.click("#build-submit")
    errors = page.inner_text("#build-errors")
    assert "source" in errors and "no-equals-sign" in errors


def test_registries_page_and_network_details(as_role, stack):
    page = as_role("admin")
    page.goto(stack.url + "/images/")
    page.click("#registries-link")
    page.fill("#registry-form input[name=name]", "tb-reg")
    page.fill("#registry-form input[name=address]", "registry.example.test:5000")
    page.fill("#registry-form input[name=password]", "tb-secret")
    page.click("#registry-form button[type=submit]")
    page.wait_for_selector(".messages li.success")
    assert "registry.example.test:5000" in page.inner_text("#registries")
    assert "tb-secret" not in page.content()
    check_sizes(page, stack.url, "registries")
    page.click("button[data-registry-remove=tb-reg]")
    page.wait_for_selector(".messages li.success")
    # Network details, the built-in bridge included, as the developer who uses them.
    create(stack, "tb-e-bridge", network={"mode": "bridge"})
    dev = as_role("tb-dev")
    dev.goto(stack.url + "/networks/")
    dev.click("a[data-builtin=bridge]")
    dev.wait_for_selector("#network-containers")
    assert "tb-e-bridge" in dev.inner_text("#network-containers")
    check_sizes(dev, stack.url, "network-bridge")


def test_network_connect_and_a_health_check_from_the_browser(as_role, stack):
    status, body = stack.api(
        "POST",
        "networks/?wait=60",
        {"name": "tb-join", "team": stack.team, "host": stack.host, "subnet": "10.219.7.0/24"},
    )
    assert status in (200, 201), body
    net = stack.sql("SELECT id FROM networks_network WHERE name = 'tb-join'")[0][0]
    joiner = create(stack, "tb-e-join", network={"mode": "bridge"})
    page = as_role("tb-dev")
    # Connect a running container from the network's page: the agent wires it at once.
    page.goto(f"{stack.url}/networks/{net}/")
    page.select_option("#connect-container", value=str(joiner))
    page.fill("#connect-aliases", "joiner")
    page.click("#network-connect button[type=submit]")
    page.wait_for_selector(".messages li.success")
    stack.wait_until(
        lambda: (
            "tb-join"
            in stack.sql("SELECT spec FROM containers_container WHERE name = 'tb-e-join'")[0][0]
        ),
        60,
        "the connect to reach the row",
    )
    page.goto(f"{stack.url}/networks/{net}/")
    assert "tb-e-join" in page.inner_text("#network-containers")
    check_sizes(page, stack.url, "network-connect")
    page.click("#network-containers button.danger")
    page.wait_for_selector(".messages li.success")
    # A health check from the create form; the live panel shows what the host found.
    page.goto(stack.url + "/containers/new/")
    page.fill("#id_image", "busybox")
    page.fill("#id_name", "tb-e-health")
    page.fill("#id_command", "sleep 1000")
    page.fill("#id_network", "none")
    page.fill("#id_health_cmd", "echo fine")
    page.fill("#id_health_interval", "1")
    page.click("#create-submit")
    page.wait_for_url(re.compile(r"/containers/\d+/$"))
    page.wait_for_selector("#inspect-health .state-healthy", timeout=60_000)
    check_sizes(page, stack.url, "container-health")
