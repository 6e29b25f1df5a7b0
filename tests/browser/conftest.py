"""Browser tests: a real Berth (daphne web server, host agent, runtime, Redis) and headless Chromium.

The stack is the host agent's end-to-end Stack (tests/e2e/conftest.py), run with the Redis
channel layer and served by daphne (`runserver` of the daphne app: HTTP and WebSockets).
Screenshots of every main page go to $BERTH_ARTIFACTS/browser/.
"""

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from browser_helpers import artifacts

REPO = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
CHROMIUM = os.environ.get("BERTH_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
USER_PASSWORD = "tb-password-1"


def _load_e2e():
    # The e2e conftest is a plugin of its own folder; load it as a plain module to reuse Stack.
    spec = importlib.util.spec_from_file_location(
        "berth_e2e_stack", REPO / "tests" / "e2e" / "conftest.py"
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules["berth_e2e_stack"] = module
    spec.loader.exec_module(module)
    return module


e2e = _load_e2e()

SEED = f"""
from accounts.models import Membership, Team, User
from rbac.models import Role, RoleBinding
team = Team.objects.get(name=TEAM)
for name, role, scoped in (("tb-viewer", "viewer", False), ("tb-dev", "developer", True), ("tb-rando", None, False)):
    user, _ = User.objects.get_or_create(username=name)
    user.set_password({USER_PASSWORD!r})
    user.save()
    if role:
        RoleBinding.objects.get_or_create(user=user, role=Role.objects.get(name=role), scope_team=team if scoped else None)
    if scoped:
        Membership.objects.get_or_create(team=team, user=user)
print("seeded")
"""


class BrowserStack(e2e.Stack):
    """The e2e stack served by daphne (ASGI: pages and the terminal's WebSocket)."""

    def __init__(self, base, redis_url):
        super().__init__(base, redis_url)
        self.env["DJANGO_SETTINGS_MODULE"] = "browser_settings"
        self.env["PYTHONPATH"] = f"{HERE}:{self.env['PYTHONPATH']}"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.web_port}"

    def start_web(self):
        """daphne's runserver; --insecure serves static/ although DEBUG is off in test settings."""
        with open(self.logs / "web.log", "ab") as log:
            self.web = subprocess.Popen(
                [
                    str(e2e.PY),
                    "manage.py",
                    "runserver",
                    "--noreload",
                    "--insecure",
                    f"127.0.0.1:{self.web_port}",
                ],
                cwd=REPO,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        e2e.wait_until(self._web_answers, 30, "the web server to answer")

    def seed_users(self):
        """tb-viewer (viewer), tb-dev (developer of the stack's team), tb-rando (no role)."""
        self.manage("shell", "-c", f"TEAM = {self.team!r}\n" + SEED)


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory):
    """REDIS_URL when it answers, else a private redis-server (stopped by its PID)."""
    url = os.environ.get("REDIS_URL")
    if url and e2e.redis_answers(url):
        yield url
        return
    if not shutil.which("redis-server"):
        pytest.skip("redis-server is not installed")
    port = e2e.free_port()
    proc = subprocess.Popen(
        [
            "redis-server",
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(tmp_path_factory.mktemp("tb-redis")),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}/0"
    try:
        e2e.wait_until(lambda: e2e.redis_answers(url), 10, "redis-server to answer")
        yield url
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.fixture(scope="module")
def stack(redis_url):
    """One Berth for the browser tests: web (daphne), agent, runtime; torn down by pid and prefix."""
    if os.geteuid() != 0:
        pytest.skip("browser tests drive the real agent and runtime: run them as root")
    base = Path(f"/tmp/berth-tb-{e2e._random(8)}")
    base.mkdir(mode=0o755)
    stack = BrowserStack(base, redis_url)
    try:
        stack.setup()
        stack.seed_users()
        stack.start_worker()
        stack.start_web()
        yield stack
    finally:
        for name in ("web.log", "agent.log"):
            log = stack.logs / name
            if log.exists():
                artifacts().joinpath(f"tb-{name}").write_bytes(log.read_bytes()[-200_000:])
        stack.teardown()


@pytest.fixture(scope="module")
def browser():
    """Headless Debian Chromium driven by Playwright (never a downloaded browser).

    Module scope on purpose: Playwright's sync API keeps an asyncio loop running while it is
    open, which breaks every later test that uses asyncio (pyroute2) or opens Playwright again.
    """
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
def page_for(browser, stack):
    """page_for("admin") -> a logged-in page in a fresh browser context; closed after the test."""
    contexts = []

    def make(username, password=None):
        context = browser.new_context(viewport={"width": 1400, "height": 1000})
        contexts.append(context)
        page = context.new_page()
        page.set_default_timeout(20_000)
        page.on("dialog", lambda dialog: dialog.accept())
        page.goto(stack.url + "/login/")
        page.fill("#id_username", username)
        page.fill(
            "#id_password",
            password or (e2e.ADMIN_PASSWORD if username == "admin" else USER_PASSWORD),
        )
        page.click("button[type=submit]")
        page.wait_for_url(stack.url + "/")
        return page

    yield make
    for context in contexts:
        context.close()


@pytest.fixture(scope="module")
def as_role(browser, stack):
    """as_role("admin") -> that role's logged-in page, one browser context per role per module."""
    pages = {}

    def get(username):
        if username not in pages:
            context = browser.new_context(viewport={"width": 1440, "height": 900})
            page = context.new_page()
            page.set_default_timeout(20_000)
            page.on("dialog", lambda dialog: dialog.accept())
            page.console_errors = []
            page.on(
                "console",
                lambda msg, page=page: (
                    page.console_errors.append(msg.text) if msg.type == "error" else None
                ),
            )
            page.goto(stack.url + "/login/")
            page.fill("#id_username", username)
            password = e2e.ADMIN_PASSWORD if username == "admin" else USER_PASSWORD
            page.fill("#id_password", password)
            page.click("button[type=submit]")
            page.wait_for_url(stack.url + "/")
            pages[username] = page
        page = pages[username]
        page.set_viewport_size({"width": 1440, "height": 900})
        return page

    yield get
    for page in pages.values():
        page.context.close()
