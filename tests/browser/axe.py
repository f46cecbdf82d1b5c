"""axe-core (bundled by axe-playwright-python) run in the page: no critical or serious
violation of WCAG 2 A/AA or best practice is allowed on any page state a test reaches."""

from __future__ import annotations

from axe_playwright_python.sync_playwright import Axe

_AXE = Axe()
BLOCKING = ("critical", "serious")


def assert_accessible(page, state: str) -> None:
    results = _AXE.run(page, options={"resultTypes": ["violations"]})
    blocking = [v for v in results.response["violations"] if v["impact"] in BLOCKING]
    assert not blocking, f"axe-core on {state} ({page.url}):\n" + "\n".join(
        f"- {v['id']} ({v['impact']}): {v['help']} at "
        + ", ".join(str(node["target"]) for node in v["nodes"][:4])
        for v in blocking
    )


def assert_no_horizontal_scroll(page, state: str) -> None:
    width = page.evaluate("document.documentElement.scrollWidth")
    viewport = page.evaluate("window.innerWidth")
    assert width <= viewport, f"{state}: the page is {width} px wide in a {viewport} px window"
