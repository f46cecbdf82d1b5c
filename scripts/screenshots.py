"""Take the README's screenshots of a running CARTtrack (bin/run) with Debian's chromium.

.venv/bin/python scripts/screenshots.py [BASE_URL]     # default http://127.0.0.1:8000
.venv/bin/python scripts/screenshots.py [BASE_URL] --zh-CN-only   # only the Chinese alert page
"""

import sys
from pathlib import Path

from playwright.sync_api import sync_playwright

ZH_ONLY = "--zh-CN-only" in sys.argv
_ARGS = [a for a in sys.argv[1:] if not a.startswith("--")]
BASE = (_ARGS[0] if _ARGS else "http://127.0.0.1:8000").rstrip("/")
OUT = Path(__file__).resolve().parent.parent / "docs" / "screenshots"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
]


def sign_in(page) -> None:
    page.goto(f"{BASE}/login/")
    page.fill("input[name=username]", "dr.alpha")
    page.fill("input[name=password]", "carttrack-demo")
    page.click("button[type=submit]")
    page.wait_for_load_state()


def first_high_alert_url(page) -> str:
    page.goto(f"{BASE}/alerts/?severity=high")
    link = page.locator("[data-testid=alert-inbox] tbody a[href^='/alerts/']").first
    return f"{BASE}{link.get_attribute('href')}"


def chinese_alert_page(browser, alert_url: str) -> None:
    """The alert page read by a Chinese browser (zh-CN: Accept-Language zh-CN) at a phone's
    width: the value that raised it, its day and the previous count come first."""
    chinese = browser.new_context(locale="zh-CN", viewport={"width": 390, "height": 844})
    page = chinese.new_page()
    sign_in(page)
    page.goto(alert_url)
    page.get_by_test_id("key-facts").wait_for()
    page.screenshot(path=OUT / "alert-detail-zh-CN.png")
    chinese.close()


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        sign_in(page)
        if ZH_ONLY:
            chinese_alert_page(browser, first_high_alert_url(page))
            browser.close()
            return
        page.screenshot(path=OUT / "worklist.png", full_page=True)  # the home page
        page.goto(f"{BASE}/patients/")
        page.screenshot(path=OUT / "patient-list.png")
        # A patient with an early-regeneration alert.
        page.goto(f"{BASE}/alerts/?severity=high")
        page.screenshot(path=OUT / "alert-inbox.png")
        link = page.locator("[data-testid=alert-inbox] tbody a[href^='/alerts/']").first
        link.click()
        page.locator(".course-plot .main-svg").first.wait_for()
        page.screenshot(path=OUT / "alert-detail.png", full_page=True)
        alert_url = page.url
        page.locator("a[href^='/patients/DEMO']").first.click()
        page.locator(".course-plot .main-svg").first.wait_for()
        page.screenshot(path=OUT / "patient-page.png", full_page=True)
        chart = page.get_by_test_id("course-chart")
        chart.screenshot(path=OUT / "course-chart.png")
        phone = browser.new_page(viewport={"width": 390, "height": 844})
        phone.context.add_cookies(page.context.cookies())
        phone.goto(page.url)
        phone.locator(".course-plot .main-svg").first.wait_for()
        phone.screenshot(path=OUT / "patient-page-phone.png")
        page.goto(f"{BASE}/dashboard/")
        page.wait_for_timeout(1500)
        page.screenshot(path=OUT / "dashboard.png", full_page=True)
        chinese_alert_page(browser, alert_url)
        browser.close()


if __name__ == "__main__":
    main()
