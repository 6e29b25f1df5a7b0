"""OIDC sign-in in Chromium (Playwright): Berth's SSO button, the provider's login page, back to
the dashboard; logout at Berth ends the provider session too; a refusal shown on the page."""

import os
from pathlib import Path

import pytest

from tests.browser.browser_helpers import shot
from tests.sso.berth_process import BerthWeb
from tests.sso.provider_process import PASSWORDS

CHROMIUM = os.environ.get("BERTH_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run"]

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def berth(provider):
    web = BerthWeb(provider.berth_port, provider.berth_settings())
    try:
        web.start()
        yield web
    finally:
        web.stop()


@pytest.fixture(scope="module")
def browser():
    """Headless Debian Chromium (never a downloaded browser); module scope, like tests/browser."""
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is not installed")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def page(browser):
    context = browser.new_context()
    page = context.new_page()
    page.set_default_timeout(20_000)
    yield page
    context.close()


def provider_login(page, username):
    page.wait_for_selector("#idp-username")
    page.fill("#idp-username", username)
    page.fill("#idp-password", PASSWORDS[username])
    page.click("#idp-submit")


def test_sign_in_and_out_through_the_provider(berth, provider, page):
    page.goto(berth.url + "/login/")
    shot(page, "sso-login")
    page.click("#sso-login")
    assert page.url.startswith(provider.url + "/accounts/login/")
    provider_login(page, "ts-carl")
    page.wait_for_url(berth.url + "/")
    assert page.inner_text(".who").strip() == "ts-carl"
    # Tokens never reach Berth's log (its request lines included).
    web_log = (berth.data / "web.log").read_text(errors="replace")
    for token in provider.access_tokens():
        assert token not in web_log

    page.click("#logout")
    page.wait_for_url(berth.url + "/login/")
    page.goto(berth.url + "/")
    assert page.url.startswith(berth.url + "/login/")
    # The provider's session ended too: signing in again asks for the password again.
    page.click("#sso-login")
    page.wait_for_selector("#idp-username")
    assert page.url.startswith(provider.url + "/accounts/login/")

    events = berth.audit()
    assert ("auth.login", "allowed", "ts-carl", "oidc") in [e[:4] for e in events]
    assert ("auth.logout", "allowed", "ts-carl", "logout") in [e[:4] for e in events]
    synced = [e for e in events if e[0] == "directory.sync" and e[2] == "ts-carl"]
    assert "role developer on team:ts-web-alpha" in synced[0][4]["added"]


def test_a_refused_sign_in_says_why_in_the_browser(berth, provider, page):
    page.goto(berth.url + "/login/")
    page.click("#sso-login")
    provider_login(page, "ts-ursula")
    page.wait_for_selector("#login-error")
    assert "None of your directory groups gives access" in page.inner_text("#login-error")
    page.goto(berth.url + "/")
    assert page.url.startswith(berth.url + "/login/")
    denied = [e for e in berth.audit() if e[0] == "auth.login" and e[1] == "denied"]
    assert any("maps to a team" in e[3] for e in denied)
