"""Browser checks shared by the browser tests: axe-core in the page, both screen sizes."""

from browser_helpers import artifacts

PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1440, "height": 900}
BLOCKING = ("serious", "critical")
AXE = "/static/vendor/axe/axe.min.js"  # vendored from npm (static/vendor/VERSIONS)

RUN_AXE = """async () => {
  const result = await axe.run(document, {resultTypes: ["violations"]});
  return result.violations.map((v) => ({id: v.id, impact: v.impact, help: v.help,
    nodes: v.nodes.slice(0, 3).map((n) => n.target.join(" "))}));
}"""


def axe_violations(page, base_url: str) -> list[dict]:
    """Serious or critical axe-core violations of the page as it is now (axe served by Berth)."""
    # Content that arrived after the last resize (logs, polled rows) is marked as it settles;
    # mark once more so what scrolls now is focusable now.
    page.evaluate("() => window.berthMarkScrollables && window.berthMarkScrollables()")
    if not page.evaluate("() => typeof window.axe !== 'undefined'"):
        page.add_script_tag(url=base_url + AXE)
    return [v for v in page.evaluate(RUN_AXE) if v["impact"] in BLOCKING]


def page_width(page) -> int:
    """How wide the document is (more than the viewport: the page scrolls sideways)."""
    return page.evaluate("() => document.documentElement.scrollWidth")


def too_wide(page) -> list[str]:
    """The outermost elements that stick out of the viewport (for a failure message)."""
    return page.evaluate(
        """() => Array.from(document.querySelectorAll('body *')).filter((el) =>
          el.getBoundingClientRect().right > window.innerWidth + 1 &&
          el.parentElement.getBoundingClientRect().right <= window.innerWidth + 1)
          .slice(0, 8).map((el) => el.tagName + '#' + el.id + '.' + el.className + ' '
          + Math.round(el.getBoundingClientRect().width))"""
    )


def check_sizes(page, base_url: str, name: str) -> None:
    """Screenshots at 390x844 and 1440x900; no sideways scrolling and no serious axe
    violation at either size."""
    for size in (PHONE, DESKTOP):
        page.set_viewport_size(size)
        # Two frames: media queries apply and Chart.js redraws at the new size.
        page.evaluate(
            "() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)))"
        )
        page.screenshot(path=str(artifacts() / f"{name}-{size['width']}.png"), full_page=True)
        assert page_width(page) <= size["width"], (name, size, too_wide(page))
        violations = axe_violations(page, base_url)
        assert not violations, (name, size["width"], violations)
