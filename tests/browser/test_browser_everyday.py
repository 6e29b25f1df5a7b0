"""Issue 23 in headless Chromium, as the roles that use each page: home counts, hidden links,
the role-name pattern, favicon, skip link, a failed pull, the phone layout, host pickers and
the container pages. Every page is shot at 390x844 and 1440x900 and checked with axe-core."""

import re

import berth_e2e_stack as e2e  # loaded by this folder's conftest
import pytest
from a11y import PHONE, axe_violations, check_sizes, page_width

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
