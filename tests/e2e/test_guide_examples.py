"""The shell examples of docs/guide/*.md, run with bash against a served Berth.

An example is a ```sh block right after `<!-- guide-test: NAME -->` (`NAME in=checkout` runs it
in the Berth checkout, for `manage.py`; otherwise in a scratch directory of the page). A
```text block right after it is its expected output: each non-blank line must appear in what
the example printed, in that order. Every example must exit 0.

The examples of one page follow on from each other as in one shell: a variable an example
assigns (`NAME=...` at the start of a line) is there for the next ones. Each page starts with
BERTH (the base URL), HOST_NAME (this stack's host), TOKEN (the page's reader: a developer for
developer.md, the admin otherwise), DEV_TOKEN (the developer's), LEAD_TOKEN (a user with no
role yet), BERTH_USER and BERTH_PASSWORD (the developer's login).
"""

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.e2e.conftest import REPO

pytestmark = [pytest.mark.e2e, pytest.mark.root]

GUIDE = REPO / "docs" / "guide"
PAGES = ("developer.md", "team-admin.md", "operator.md", "api.md", "troubleshooting.md")
EXAMPLE = re.compile(
    r"<!-- guide-test: (?P<name>[\w-]+)(?P<attrs>[^>]*?) -->\s*\n"
    r"```sh\n(?P<code>.*?)\n```\n"
    r"(?:\s*```text\n(?P<expected>.*?)\n```\n)?",
    re.DOTALL,
)
ASSIGNED = re.compile(r"^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)=", re.MULTILINE)
DEVELOPER_PASSWORD = "guide-dev-password-1"


def examples(page: str) -> list[dict]:
    """The marked examples of a guide page, in order."""
    text = (GUIDE / page).read_text()
    found = [m.groupdict() for m in EXAMPLE.finditer(text)]
    assert len(found) == text.count("<!-- guide-test:"), f"{page}: a marker without a sh block"
    return found


def test_every_page_has_examples():
    """The extraction finds the examples (runs without root: it reads the files only)."""
    names = [e["name"] for page in PAGES for e in examples(page)]
    assert len(names) == len(set(names)), "example names must be unique"
    assert all(examples(page) for page in PAGES)


@pytest.fixture(scope="module")
def readers(web):
    """Users the guides speak as: a developer of team e2e and a future team lead."""
    if not (shutil.which("curl") and shutil.which("jq")):
        pytest.skip("curl and jq are needed (scripts/lib.sh TEST_PACKAGES)")
    code = (
        "from accounts.models import ApiToken, Membership, Team, User\n"
        "from rbac.models import Role, RoleBinding\n"
        f"team = Team.objects.get(name={web.team!r})\n"
        f"dana = User.objects.create_user('dana', password={DEVELOPER_PASSWORD!r})\n"
        "lee = User.objects.create_user('lee', password='guide-lead-password-1')\n"
        "for user in (dana, lee):\n"
        "    Membership.objects.create(team=team, user=user)\n"
        "RoleBinding.objects.create(user=dana, role=Role.objects.get(name='developer'),"
        " scope_team=team)\n"
        "print(json.dumps({'dev': ApiToken.issue(dana, 'guide')[1],"
        " 'lead': ApiToken.issue(lee, 'guide')[1]}))\n"
    )
    out = web.manage("shell", "-c", "import json\n" + code).stdout.strip().splitlines()[-1]
    return json.loads(out)


def run_page(web, readers, page: str, scratch: Path):
    """Run every example of `page` in order; fail with the example's name and output."""
    state = scratch / "state.sh"
    state.write_text("")
    env = dict(
        web.env,
        BERTH=f"http://127.0.0.1:{web.web_port}",
        HOST_NAME=web.host,
        TOKEN=readers["dev"] if page == "developer.md" else web.token,
        DEV_TOKEN=readers["dev"],
        LEAD_TOKEN=readers["lead"],
        BERTH_USER="dana",
        BERTH_PASSWORD=DEVELOPER_PASSWORD,
        GUIDE_STATE=str(state),
    )
    for example in examples(page):
        names = sorted(set(ASSIGNED.findall(example["code"])))
        script = (
            'set -euo pipefail\nsource "$GUIDE_STATE"\n'
            + example["code"]
            + "\n"
            + (f'declare -p {" ".join(names)} >> "$GUIDE_STATE"\n' if names else "")
        )
        cwd = REPO if "in=checkout" in example["attrs"] else scratch
        result = subprocess.run(
            ["bash", "-c", script],
            cwd=cwd,
            env=env,
            capture_output=True,
            text=True,
            timeout=180,
        )
        where = f"{page} example {example['name']!r}"
        assert result.returncode == 0, (
            f"{where} exited {result.returncode}\n--- stdout\n{result.stdout}"
            f"\n--- stderr\n{result.stderr}"
        )
        position = 0
        for line in (example["expected"] or "").splitlines():
            if not line.strip():
                continue
            found = result.stdout.find(line.strip(), position)
            assert found >= 0, (
                f"{where}: expected output line {line.strip()!r} not found (in order) in:\n"
                f"{result.stdout}\n--- stderr\n{result.stderr}"
            )
            position = found + len(line.strip())


@pytest.mark.parametrize("page", PAGES)
def test_guide_examples_run(web, readers, page, tmp_path):
    run_page(web, readers, page, tmp_path)
    # The examples clean up after themselves: no container of theirs is left.
    status, body = web.api("GET", "containers/?page_size=500", expect=200)
    left = [c["name"] for c in body["results"] if c["observed_state"] != "removed"]
    assert not left, f"{page} left containers behind: {left}"
