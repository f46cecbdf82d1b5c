"""The course chart at a phone's width (issue 23): it opens on the first infusion's days -7 to
90, and its view buttons switch to the second infusion and the whole course by keyboard."""

from datetime import date, datetime, timedelta

import pytest
from playwright.sync_api import expect

from patients import units
from tests.browser.steps import sign_in
from tests.factories import BERLIN, InfusionFactory, LabResultFactory, PatientFactory

pytestmark = pytest.mark.browser
FIRST, SECOND = date(2025, 3, 1), date(2025, 5, 10)  # the second infusion on day 70


@pytest.fixture
def two_infusions(clinician, center):
    patient = PatientFactory(center=center, study_id="CT-0230")
    patient.hematologists.add(clinician)
    InfusionFactory(patient=patient, infusion_date=FIRST)
    InfusionFactory(patient=patient, infusion_date=SECOND, infusion_number=2)
    start = datetime(2025, 3, 1, 9, 0, tzinfo=BERLIN)
    for day, value in [(-5, 80), (7, None), (14, None), (28, 6), (77, None), (120, 15)]:
        LabResultFactory(
            patient=patient,
            collected_at=start + timedelta(days=day),
            analyte=units.PB_BCELL_ABS,
            value=value,
            unit=units.CELLS_PER_UL,
            qualifier="" if value is not None else units.UNDETECTABLE,
        )
    return patient


def x_range(page):
    return page.evaluate("() => document.getElementById('course-chart-patient').layout.xaxis.range")


def test_the_chart_opens_on_days_minus_7_to_90_and_the_keyboard_switches_views(
    page, clinician, two_infusions
):
    page.set_viewport_size({"width": 390, "height": 844})
    sign_in(page, clinician.username)
    page.goto(f"/patients/{two_infusions.study_id}/")
    chart = page.locator("#course-chart-patient")
    expect(chart.locator(".main-svg").first).to_be_visible()
    assert x_range(page) == [-7, 90]
    first = page.get_by_role("button", name="Infusion 1: day −7 to 90")
    second = page.get_by_role("button", name="Infusion 2: day −7 to 90")
    whole = page.get_by_role("button", name="Whole course")
    expect(first).to_have_attribute("aria-pressed", "true")

    first.focus()
    page.keyboard.press("Tab")
    expect(second).to_be_focused()
    page.keyboard.press("Enter")
    expect(second).to_have_attribute("aria-pressed", "true")
    expect(first).to_have_attribute("aria-pressed", "false")
    page.wait_for_function(
        "() => document.getElementById('course-chart-patient').dataset.view === '1'"
    )
    assert x_range(page) == [70 - 7, 70 + 90]

    page.keyboard.press("Tab")
    expect(whole).to_be_focused()
    page.keyboard.press("Space")
    expect(whole).to_have_attribute("aria-pressed", "true")
    page.wait_for_function(
        "() => document.getElementById('course-chart-patient').dataset.view === '2'"
    )
    left, right = x_range(page)
    assert left < -5 and right > 120  # every point of the course

    # The labels the server placed stay apart in the drawn chart too (no two text boxes meet).
    overlaps = page.evaluate(
        """() => {
          const boxes = [...document.querySelectorAll('#course-chart-patient .annotation')]
            .filter(a => a.getAttribute('visibility') !== 'hidden' && a.style.display !== 'none')
            .map(a => a.querySelector('.annotation-text-g').getBoundingClientRect())
            .filter(r => r.width > 0);
          let n = 0;
          for (let i = 0; i < boxes.length; i++) for (let j = i + 1; j < boxes.length; j++) {
            const a = boxes[i], b = boxes[j];
            const across = a.left < b.right - 1 && b.left < a.right - 1;
            if (across && a.top < b.bottom - 1 && b.top < a.bottom - 1) n++;
          }
          return n;
        }"""
    )
    assert overlaps == 0
    # A phone's width: the page does not scroll sideways.
    assert page.evaluate("() => document.documentElement.scrollWidth") <= 390
