"""A clinician enters one sample with two analytes and sees it on the patient page, with its day
after infusion (CLINICAL.md sections 2-3)."""

from datetime import date, datetime

import pytest
from playwright.sync_api import expect

from patients import units
from patients.models import LabResult
from tests.browser.conftest import ARTIFACTS
from tests.browser.steps import sign_in
from tests.factories import BERLIN, InfusionFactory, PatientFactory

pytestmark = pytest.mark.browser


def labs_table_cells(page) -> list[dict[str, str]]:
    """The labs table as one {column header: cell text} per sample."""
    table = page.get_by_test_id("labs")
    headers = [h.strip() for h in table.locator("thead th").all_inner_texts()]
    rows = []
    for row in table.locator("tbody tr").all():
        cells = [c.strip() for c in row.locator("td").all_inner_texts()]
        rows.append(dict(zip(headers, cells, strict=True)))
    return rows


def test_a_clinician_enters_a_sample_with_two_analytes_and_sees_it_on_day_14(
    page, clinician, center
):
    patient = PatientFactory(center=center, study_id="CT-0042")
    InfusionFactory(patient=patient, infusion_date=date(2025, 3, 1))

    sign_in(page, clinician.username)
    page.goto("/patients/")
    page.get_by_role("link", name="CT-0042").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("CT-0042")

    page.get_by_role("link", name="Enter lab results").first.click()
    page.get_by_label("Collection date").fill("2025-03-15")  # day 14 after the infusion
    page.get_by_label("Time").fill("08:30")
    # No B cells seen: recorded as the qualifier, never as the number 0.
    page.locator("[name='pb_bcell_abs-qualifier']").select_option(units.UNDETECTABLE)
    page.locator("[name='alc-value']").fill("1.2")
    page.locator("[name='alc-unit']").select_option(units.GIGA_PER_L)
    page.get_by_role("button", name="Save results").click()

    page.wait_for_url("**/patients/CT-0042/")
    expect(page.get_by_role("status")).to_contain_text("2 results recorded for 15 Mar 2025")
    (sample,) = labs_table_cells(page)
    assert sample["Day"] == "day 14"
    assert sample["Collected"].startswith("15 Mar 2025")
    # One unit per column (in its heading, canonical); the entered value is on hover.
    assert sample[units.ANALYTES[units.PB_BCELL_ABS].label + " (cells/µL)"] == "Undetectable"
    assert sample[units.ANALYTES[units.ALC].label + " (cells/µL)"] == "1200"

    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "patient-page.png"), full_page=True)

    saved = {r.analyte: r for r in LabResult.objects.filter(patient=patient)}
    assert set(saved) == {units.PB_BCELL_ABS, units.ALC}
    assert {r.collected_at for r in saved.values()} == {datetime(2025, 3, 15, 8, 30, tzinfo=BERLIN)}
    assert saved[units.PB_BCELL_ABS].value is None
    assert saved[units.ALC].canonical_value == 1200
    assert {r.entered_by for r in saved.values()} == {clinician}
