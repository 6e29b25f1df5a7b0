"""Browser fixtures of the registries tests: the dashboard engineer's, loaded, not copied."""

import importlib.util
import sys
from pathlib import Path

TESTS = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(TESTS / "browser"))  # browser_helpers, as tests/browser imports it

_spec = importlib.util.spec_from_file_location(
    "tr_browser_conftest", TESTS / "browser" / "conftest.py"
)
_browser = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_browser)

redis_url = _browser.redis_url
stack = _browser.stack
browser = _browser.browser
page_for = _browser.page_for
