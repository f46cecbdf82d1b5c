"""In Chromium with a German locale: a decimal comma is 0.9, never 9; an unusual value is shown
again, marked, and saved only once the clinician confirms it (CLINICAL.md section 2); the date is
echoed as read with its day after the infusion, and the form's messages are German (issue 23)."""

from datetime import date
from decimal import Decimal

import pytest
from playwright.sync_api import expect

from patients import units
from patients.models import LabResult
from tests.browser.conftest import ARTIFACTS
from tests.browser.steps import sign_in
from tests.factories import InfusionFactory, PatientFactory

pytestmark = pytest.mark.browser


@pytest.fixture
def german_page(open_tab):
    """A tab of a browser set to German (decimal comma), as in half of Europe's wards."""
    return open_tab(locale="de-DE", timezone_id="Europe/Berlin")


def open_sample_form(page, clinician, center) -> None:
    patient = PatientFactory(center=center, study_id="CT-0077")
    InfusionFactory(patient=patient, infusion_date=date(2025, 3, 1))
    sign_in(page, clinician.username)
    page.goto("/patients/CT-0077/samples/add/")
    assert page.evaluate("navigator.language") == "de-DE"
    expect(page.get_by_text("Europe/Berlin").first).to_be_visible()  # the zone it uses
    page.locator("[name=collected_date]").fill("2025-03-15")
    page.locator("[name=collected_time]").fill("08:30")


def test_a_decimal_comma_typed_in_a_german_browser_is_stored_as_0_9(german_page, clinician, center):
    page = german_page
    open_sample_form(page, clinician, center)
    field = page.locator("[name='alc-value']")
    field.press_sequentially("0,9")  # keystroke by keystroke, as a person types
    expect(field).to_have_value("0,9")  # nothing typed is dropped by the browser
    page.locator("[name='alc-unit']").select_option(units.GIGA_PER_L)
    page.locator("form.sample-form button[type=submit]").click()

    page.wait_for_url("**/patients/CT-0077/")
    (alc,) = LabResult.objects.all()
    assert alc.value == Decimal("0.9") and alc.unit == units.GIGA_PER_L
    assert alc.canonical_value == Decimal(900)  # 0.9 ×10⁹/L, never 9


def test_an_ambiguous_number_is_refused_in_the_browser_with_how_to_write_it(
    german_page, clinician, center
):
    page = german_page
    open_sample_form(page, clinician, center)
    page.locator("[name='pb_bcell_abs-value']").press_sequentially("1.234")
    page.locator("form.sample-form button[type=submit]").click()
    # In the summary at the top, which has the focus, and beside the value.
    expect(page.locator("[data-error-summary]")).to_be_focused()
    expect(page.locator("[data-error-summary]")).to_contain_text("ist mehrdeutig: Es kann 1234")
    expect(page.locator("p.error", has_text="ist mehrdeutig: Es kann 1234")).to_be_visible()
    assert not LabResult.objects.exists()


def test_an_unusual_value_is_confirmed_on_a_second_look(german_page, clinician, center):
    page = german_page
    open_sample_form(page, clinician, center)
    page.locator("[name='pb_bcell_abs-value']").press_sequentially("15")
    page.locator("[name='pb_bcell_abs-unit']").select_option(units.GIGA_PER_L)
    page.locator("[name='alc-value']").press_sequentially("0,2")
    page.locator("[name='alc-unit']").select_option(units.GIGA_PER_L)
    page.locator("form.sample-form button[type=submit]").click()

    confirmation = page.get_by_test_id("plausibility-confirmation")
    expect(confirmation).to_be_visible()
    # In the summary at the top, which has the focus, and beside the value.
    expect(page.locator("[data-error-summary]")).to_be_focused()
    expect(page.locator("[data-error-summary]")).to_contain_text("sind mehr als alle Lymphozyten")
    expect(page.locator("p.error", has_text="sind mehr als alle Lymphozyten")).to_be_visible()
    assert not LabResult.objects.exists()
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "plausibility-confirmation.png"), full_page=True)

    confirmation.get_by_role("checkbox").check()
    page.locator("form.sample-form button[type=submit]").click()
    page.wait_for_url("**/patients/CT-0077/")
    bcells = LabResult.objects.get(analyte=units.PB_BCELL_ABS)
    assert bcells.canonical_value == Decimal(15_000)
    assert bcells.plausibility_confirmed and bcells.plausibility_confirmed_by == clinician
    assert LabResult.objects.get(analyte=units.ALC).canonical_value == Decimal(200)


def test_the_date_is_echoed_as_read_with_its_day_after_the_infusion(german_page, clinician, center):
    page = german_page
    open_sample_form(page, clinician, center)
    echo = page.locator("[data-date-echo-for='id_collected_date']")
    assert echo.get_attribute("aria-live") == "polite"

    def shown(year, month, day):  # as the page's language writes a date (<html lang>)
        return page.evaluate(
            "([y, m, d]) => new Intl.DateTimeFormat(document.documentElement.lang, {day: "
            "'numeric', month: 'short', year: 'numeric', timeZone: 'UTC'})"
            ".format(Date.UTC(y, m - 1, d))",
            [year, month, day],
        )

    infusion = shown(2025, 3, 1)
    expect(echo).to_have_text(
        f"Gelesen als {shown(2025, 3, 15)}: Tag 14 nach der Infusion vom {infusion}."
    )
    page.get_by_label("Entnahmedatum").fill("2025-02-12")
    expect(echo).to_have_text(
        f"Gelesen als {shown(2025, 2, 12)}: Tag \u221217 nach der Infusion vom {infusion}."
    )
