"""The whole day of a hematologist, at desktop and phone widths, with axe-core on every page
state: the worklist, the patient's course chart, a sample entered, the alert it raised,
acknowledged and closed with a new therapy record made in the same place."""

from datetime import date

import pytest
from playwright.sync_api import expect

from monitoring.models import Alert
from patients.models import PreemptiveTherapy
from tests.browser.steps import check_page, expect_worklist, sign_in

pytestmark = pytest.mark.browser


@pytest.mark.parametrize("width", [1280, 390], ids=["desktop", "phone"])
def test_the_day_of_a_hematologist(page, clinician, patient_on_day_19, width):
    page.set_viewport_size({"width": width, "height": 900})

    sign_in(page, clinician.username)

    # 1. The worklist: CT-0077 is on day 19, its last count 12 days old: a count is due.
    expect_worklist(page, in_window="CT-0077", due=1, high=0)
    window = page.get_by_test_id("worklist-window")
    expect(window).to_contain_text("day 19")
    expect(window).to_contain_text("count due")
    expect(page.get_by_test_id("worklist-high")).to_contain_text("No open high alert")
    check_page(page, "the worklist")

    # 2. The patient's course chart, drawn by plotly.js from the page's JSON, and its caption.
    window.get_by_role("link", name="CT-0077").click()
    expect(page.get_by_test_id("patient-status")).to_contain_text("day 19")
    chart = page.get_by_test_id("course-chart")
    expect(chart.locator(".course-plot .main-svg").first).to_be_visible(timeout=30_000)
    expect(chart).to_contain_text("1 PB B-cell count, 0 detectable")
    check_page(page, "the patient page with its course chart")

    # 3. A sample with B cells back on day 19: the early-regeneration alert.
    page.get_by_role("link", name="Enter lab results").first.click()
    check_page(page, "the sample form")
    page.get_by_label("Collection date").fill("2025-03-20")
    page.get_by_label("Time").fill("07:30")
    page.locator("[name='pb_bcell_abs-value']").fill("12")
    page.get_by_role("button", name="Save results").click()
    page.wait_for_url("**/patients/CT-0077/")

    # 4. The message says an alert was raised, links to it, and has the focus.
    message = page.get_by_role("status").first
    expect(message).to_contain_text("1 result recorded for 20 Mar 2025.")
    expect(message).to_contain_text("This sample raised a HIGH alert: Early B-cell regeneration")
    expect(message).to_be_focused()
    check_page(page, "the patient page after the save")
    message.get_by_role("link", name="Early B-cell regeneration").click()
    expect(page.get_by_test_id("recommendation")).to_contain_text("Consider prompt pre-emptive")
    expect(page.get_by_test_id("course-chart").locator(".main-svg").first).to_be_visible(
        timeout=30_000
    )
    check_page(page, "the alert page")

    # 5. Acknowledge: the close form is right there and has the focus; close with a therapy.
    page.get_by_role("button", name="Acknowledge").click()
    expect(page.get_by_test_id("alert-status")).to_have_text("Acknowledged")
    expect(page.get_by_role("heading", name="Close with an outcome")).to_be_focused()
    expect(page.locator("#close")).to_contain_text("needs its therapy record")
    check_page(page, "the alert page after Acknowledge")
    page.get_by_role("button", name="Close alert").click()  # no outcome yet: shown back
    expect(page.locator("#close")).to_contain_text("This field is required")
    check_page(page, "the close form with an error")
    page.get_by_label("Anti-leukemic pre-emption started").check()
    page.get_by_label("Or record it: start date").fill("2025-03-20")
    page.get_by_label("Agent", exact=True).select_option("chemotherapy")
    page.get_by_role("button", name="Close alert").click()
    expect(page.get_by_test_id("alert-status")).to_have_text("Closed")
    check_page(page, "the closed alert")

    alert = Alert.objects.get(patient=patient_on_day_19, rule="early_regeneration")
    therapy = PreemptiveTherapy.objects.get(patient=patient_on_day_19)
    assert (alert.status, alert.outcome, alert.therapy_id) == (
        "closed",
        "anti_leukemic",
        therapy.pk,
    )
    assert (therapy.agent, therapy.start_date) == ("chemotherapy", date(2025, 3, 20))

    # 6. Back on the worklist: nothing high is open, and the count is no longer due.
    page.get_by_role("link", name="Today").click()
    expect(page.get_by_test_id("worklist-high")).to_contain_text("No open high alert")
    expect_worklist(page, due=0, high=0)
    expect(page.get_by_test_id("worklist-window")).not_to_contain_text("count due")
    check_page(page, "the worklist at the end of the day")
