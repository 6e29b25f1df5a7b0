"""Every relative link in README.md and docs/ points at a file or directory that exists."""

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# [text](target) and [text]: target; fenced code blocks are skipped.
INLINE = re.compile(r"\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
REFERENCE = re.compile(r"^\s*\[[^\]]+\]:\s*(\S+)", re.MULTILINE)
FENCE = re.compile(r"^```.*?^```", re.MULTILINE | re.DOTALL)


def pages() -> list[Path]:
    return [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md"))]


def relative_links(page: Path) -> list[str]:
    text = FENCE.sub("", page.read_text())
    targets = INLINE.findall(text) + REFERENCE.findall(text)
    return [t for t in targets if not re.match(r"^([a-z][a-z0-9+.-]*:|#|/)", t, re.IGNORECASE)]


def test_relative_links_point_at_files():
    broken = []
    for page in pages():
        for target in relative_links(page):
            path = target.split("#", 1)[0]
            if path and not (page.parent / path).exists():
                broken.append(f"{page.relative_to(REPO)}: {target}")
    assert not broken, "broken links:\n" + "\n".join(broken)


def test_the_guides_are_linked_from_the_readme():
    links = relative_links(REPO / "README.md")
    for guide in sorted((REPO / "docs" / "guide").glob("*.md")):
        assert f"docs/guide/{guide.name}" in links, f"README.md does not link {guide.name}"
