"""Helpers of the browser tests (a uniquely named module: every test folder has a conftest)."""

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def artifacts() -> Path:
    """$BERTH_ARTIFACTS/browser (default artifacts/browser under the checkout)."""
    path = Path(os.environ.get("BERTH_ARTIFACTS") or REPO / "artifacts") / "browser"
    path.mkdir(parents=True, exist_ok=True)
    return path


def shot(page, name: str) -> None:
    """Save a full-page screenshot as a test artifact."""
    page.screenshot(path=str(artifacts() / f"{name}.png"), full_page=True)
