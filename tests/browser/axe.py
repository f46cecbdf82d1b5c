"""axe-core (bundled by axe-playwright-python) run in the page: no critical or serious
violation of WCAG 2 A/AA or best practice is allowed on any page state a test reaches."""

from __future__ import annotations

from axe_playwright_python.sync_playwright import Axe

_AXE = Axe()
BLOCKING = ("critical", "serious")


def blocking_violations(page) -> list[str]:
    """The page's critical and serious violations, one line each (empty: none)."""
    results = _AXE.run(page, options={"resultTypes": ["violations"]})
    return [
        f"{v['id']} ({v['impact']}): {v['help']} at "
        + ", ".join(str(node["target"]) for node in v["nodes"][:4])
        for v in results.response["violations"]
        if v["impact"] in BLOCKING
    ]


def horizontal_overflow(page) -> str:
    """Why the page scrolls sideways, or "" when it fits its window."""
    width = page.evaluate("document.documentElement.scrollWidth")
    viewport = page.evaluate("window.innerWidth")
    return f"the page is {width} px wide in a {viewport} px window" if width > viewport else ""


def assert_accessible(page, state: str) -> None:
    blocking = blocking_violations(page)
    assert not blocking, f"axe-core on {state} ({page.url}):\n" + "\n".join(
        f"- {line}" for line in blocking
    )


def assert_no_horizontal_scroll(page, state: str) -> None:
    overflow = horizontal_overflow(page)
    assert not overflow, f"{state}: {overflow}"
