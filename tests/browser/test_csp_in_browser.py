"""Under the Content-Security-Policy the dashboard still draws its plotly figures and the
patient page works, with no CSP violation in Chromium's console; the policy does block an
injected inline script (so the check can fail)."""

import pytest
from playwright.sync_api import expect

from analytics.services import snapshot_compute
from patients.models import Patient
from tests.analytics.test_snapshot import small_study
from tests.browser.steps import sign_in

pytestmark = pytest.mark.browser


def _collect(page) -> list[str]:
    messages = []
    page.on("console", lambda message: messages.append(f"{message.type}: {message.text}"))
    page.on("pageerror", lambda error: messages.append(f"pageerror: {error}"))
    return messages


def _violations(messages) -> list[str]:
    return [m for m in messages if "Content Security Policy" in m or "pageerror" in m]


def test_dashboard_and_patient_page_work_under_the_policy(page, clinician, center, frozen_now):
    small_study(center=center)
    snapshot_compute(options={"center": "alpha"})
    messages = _collect(page)
    sign_in(page, clinician.username)

    page.goto("/dashboard/?center=alpha")
    for name in ("rfs", "os"):
        figure = page.get_by_test_id(f"figure-{name}")
        expect(figure.locator("svg.main-svg").first).to_be_visible()
    expect(page.get_by_test_id("figure-rfs")).to_contain_text("At risk")

    study_id = Patient.objects.filter(center=center).order_by("study_id").first().study_id
    page.goto(f"/patients/{study_id}/")
    expect(page.locator("main, body").first).to_contain_text(study_id)

    assert _violations(messages) == [], messages


def test_an_injected_inline_script_is_blocked(page, clinician):
    messages = _collect(page)
    sign_in(page, clinician.username)
    page.goto("/alerts/")
    page.evaluate(
        """() => { const s = document.createElement('script');
                   s.textContent = 'window.injected = true'; document.body.appendChild(s); }"""
    )
    assert page.evaluate("() => window.injected === true") is False
    assert any("Content Security Policy" in m for m in messages), messages
