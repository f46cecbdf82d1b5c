"""The rule-performance page in a browser: the calibration plot is drawn from its JSON data block
by the static figures.js, also under a Content-Security-Policy that forbids inline scripts."""

from __future__ import annotations

from playwright.sync_api import expect

from monitoring.services import alerts_sync
from tests.analytics.test_dataset import infused_patient
from tests.browser.steps import sign_in
from tests.factories import UserFactory

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:"
)


def test_calibration_plot_draws_under_a_strict_csp(page, center, roles):
    regrowth = [{7: None, 21: 9}, {7: None, 40: 3}, {7: None, 70: 12}, {7: None, 14: None}]
    for number, bcells in enumerate(regrowth * 3):
        relapse = 150 + 30 * number if number % 2 == 0 else None
        patient = infused_patient(
            center=center,
            bcells=bcells,
            relapse=relapse,
            followup=None if relapse else 500,
            study_id=f"CT-R{number:02d}",
        )
        alerts_sync(patient=patient)
    user = UserFactory(username="registry-e2e", center=None)
    user.groups.add(roles["registry"])
    violations = []
    page.on("console", lambda m: violations.append(m.text) if "Content Security" in m.text else 0)

    def with_csp(route):
        response = route.fetch()
        route.fulfill(
            response=response, headers={**response.headers, "content-security-policy": CSP}
        )

    page.route("**/dashboard/rules/**", with_csp)
    sign_in(page, user.username)
    page.goto("/dashboard/rules/")
    expect(page.get_by_test_id("calibration-caveat")).to_contain_text("overstates")
    figure = page.get_by_test_id("figure-calibration_unconfirmed")
    expect(figure.locator("svg.main-svg").first).to_be_visible()
    expect(figure).to_contain_text("window = landmark")
    assert violations == []
