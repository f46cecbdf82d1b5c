"""Browser tests: Debian's chromium driven by Playwright against pytest-django's live server.

The pattern every browser test follows: request `live_server` and `transactional_db` (the
server thread reads the data over its own connection, so it must be committed), take a `page`,
sign in through the real login form with `sign_in`, and click through as a user would.
"""

import os
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    # Keep each phase's report on the test item, so the page fixture knows whether it failed.
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists():
        # A missing browser is a broken machine, not a reason to skip: the check would silently
        # stop running.
        pytest.fail(
            f"Debian's chromium is missing at {CHROMIUM}: apt-get install chromium", pytrace=False
        )
    from playwright.sync_api import sync_playwright

    # Playwright's sync API runs an asyncio event loop in this (the test) thread. Django refuses
    # ORM calls from a thread with a running loop (SynchronousOnlyOperation), which would break
    # the test's own setup and assertions and pytest-django's database flush. The loop only
    # drives the browser and never calls Django, so the check is switched off, and only while
    # Playwright runs, so the rest of the suite keeps the safety check.
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    playwright = sync_playwright().start()
    try:
        chromium = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
        )
        yield chromium
        chromium.close()
    finally:
        playwright.stop()
        if previous is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


@pytest.fixture
def open_tab(browser, live_server, transactional_db, request):
    """Open a fresh tab (own cookies) with any browser context options, e.g. a locale, a time
    zone or a phone's viewport (default 1280 x 900); a screenshot of each tab is saved if the
    test fails."""
    tabs = []

    def open_(**options):
        options = {"viewport": {"width": 1280, "height": 900}, **options}
        context = browser.new_context(base_url=live_server.url, **options)
        context.set_default_timeout(10_000)
        tabs.append(context.new_page())
        return tabs[-1]

    yield open_
    report = getattr(request.node, "report_call", None)
    for n, tab in enumerate(tabs):
        if report is not None and report.failed:
            ARTIFACTS.mkdir(exist_ok=True)
            suffix = f"-{n + 1}" if n else ""
            tab.screenshot(
                path=str(ARTIFACTS / f"{request.node.name}{suffix}-failure.png"), full_page=True
            )
        tab.context.close()


@pytest.fixture
def page(open_tab):
    """A fresh desktop tab."""
    return open_tab()


@pytest.fixture
def sign_in():
    """Sign in through the login form, as a person would."""

    def sign_in_as(page, username: str, password: str) -> None:
        page.goto("/login/")
        page.get_by_label("Username").fill(username)
        page.get_by_label("Password").fill(password)
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url(lambda url: "/login/" not in url)  # the worklist, or `next`

    return sign_in_as
