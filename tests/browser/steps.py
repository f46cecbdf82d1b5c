"""What the browser tests share: signing in (by the form, or by keyboard only), reaching a
control by Tab, the check every page state passes, the worklist as its structure shows it, and
the patient in aplasia whose day most of them follow.

The steps find their way by addresses, field names and test ids, never by English words, so
they hold in any language the browser asks for.
"""

from __future__ import annotations

from datetime import date, datetime

from playwright.sync_api import expect

from patients import units
from patients.services import LabValue, lab_results_record
from tests.browser.axe import assert_accessible, assert_no_horizontal_scroll
from tests.factories import BERLIN, PASSWORD, InfusionFactory, PatientFactory


def sign_in(page, username: str, password: str = PASSWORD) -> None:
    """Sign in through the login form, as a person would; its fields are found by their names,
    as the labels are in the browser's language."""
    page.goto("/login/")
    page.locator("[name=username]").fill(username)
    page.locator("[name=password]").fill(password)
    page.locator("form button[type=submit]").click()
    page.wait_for_url(lambda url: "/login/" not in url)  # the worklist, or `next`


def sign_in_by_keyboard(page, username: str, password: str = PASSWORD) -> None:
    """Sign in with the keyboard only: Tab to the username, type both fields, press Enter."""
    page.goto("/login/")
    tab_to(page, page.locator("[name=username]"))
    page.keyboard.type(username)
    page.keyboard.press("Tab")
    page.keyboard.type(password)
    page.keyboard.press("Enter")
    page.wait_for_url(lambda url: "/login/" not in url)


def tab_to(page, locator, *, limit: int = 120) -> None:
    """Press Tab until `locator` has the focus: what a keyboard user does to reach it."""
    target = locator.element_handle()
    for _ in range(limit):
        if page.evaluate("(el) => document.activeElement === el", target):
            return
        page.keyboard.press("Tab")
    raise AssertionError(f"{locator} was not reached with {limit} presses of Tab")


def check_page(page, state: str) -> None:
    """What every page state must pass: axe-core, and no sideways scrolling in its window."""
    assert_accessible(page, state)
    assert_no_horizontal_scroll(page, state)


def expect_worklist(page, *, due: int, high: int, in_window: str = "") -> None:
    """The worklist in any language: `in_window` among the patients in their window, `due` of
    them with a count due (rows `tr.due`), `high` open high alerts (cards)."""
    window = page.get_by_test_id("worklist-window")
    if in_window:
        expect(window).to_contain_text(in_window)
    expect(window.locator("tr.due")).to_have_count(due)
    expect(page.get_by_test_id("worklist-high").locator("article")).to_have_count(high)


def patient_in_aplasia(*, clinician, center, study_id: str = "CT-0077"):
    """A patient of `clinician` infused on 1 March 2025 whose B cells were undetectable on day 7
    (8 March, 08:00 Berlin): a count on days 8 to 45 that shows B cells is early regeneration."""
    patient = PatientFactory(center=center, study_id=study_id)
    patient.hematologists.add(clinician)
    InfusionFactory(patient=patient, infusion_date=date(2025, 3, 1))
    lab_results_record(
        patient=patient,
        collected_at=datetime(2025, 3, 8, 8, tzinfo=BERLIN),
        values=[LabValue(units.PB_BCELL_ABS, None, units.CELLS_PER_UL, units.UNDETECTABLE)],
        entered_by=clinician,
    )
    return patient
