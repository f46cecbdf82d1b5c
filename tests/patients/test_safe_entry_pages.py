"""Entry on the pages: numbers typed as text, soft limits confirmed on a second look, plain
messages for every refusal (no constraint names), handled query parameters."""

from decimal import Decimal

import pytest

from patients import units
from patients.models import Infusion, LabResult
from tests.patients.conftest import sample_data
from tests.patients.page_text import field_errors, input_value, sample_row_errors
from tests.patients.test_forms import _infusion_post

pytestmark = pytest.mark.usefixtures("frozen_now")
URL = "/patients/CT-0001/samples/add/"


def test_a_decimal_comma_is_the_same_value_as_a_decimal_point(clinician_client, infused_patient):
    page = clinician_client.get(URL).content.decode()
    # Text with a decimal keyboard, never type=number (which lets the browser drop a comma).
    assert 'name="alc-value"' in page and 'inputmode="decimal"' in page
    assert 'type="number"' not in page
    response = clinician_client.post(
        URL, sample_data("2025-03-15", alc=("0,9", units.GIGA_PER_L, ""))
    )
    assert response.status_code == 302
    (alc,) = LabResult.objects.all()
    assert alc.value == Decimal("0.9") and alc.canonical_value == Decimal(900)


@pytest.mark.parametrize("typed", ["1,234", "1.234,5", "0,9,1", "9 cells", "1E+999999"])
def test_an_ambiguous_number_is_refused_with_how_to_write_it(
    clinician_client, infused_patient, typed
):
    response = clinician_client.post(URL, sample_data("2025-03-15", pb_bcell_abs=typed))
    assert response.status_code == 200
    (message,) = sample_row_errors(response.content.decode(), "pb_bcell_abs")
    assert "0.9 or 0,9" in message or "ambiguous" in message
    assert input_value(response.content.decode(), "pb_bcell_abs-value") == typed
    assert not LabResult.objects.exists()


def test_an_unusual_value_is_shown_again_and_saved_once_confirmed(
    clinician_client, infused_patient, clinician
):
    data = sample_data(
        "2025-03-15",
        pb_bcell_abs=("15", units.GIGA_PER_L, ""),
        alc=("0,2", units.GIGA_PER_L, ""),
    )
    first = clinician_client.post(URL, data)
    assert first.status_code == 200
    page = first.content.decode()
    assert 'data-testid="plausibility-confirmation"' in page
    (message,) = [m for m in sample_row_errors(page, "pb_bcell_abs") if "lymphocytes" in m]
    assert "15 ×10⁹/L" in message
    assert not LabResult.objects.exists()
    token = input_value(page, "confirmed_values")
    assert token == "pb_bcell_abs=15 10^9/L"

    # A value changed after the warning is not covered by the earlier tick.
    changed = {**data, "pb_bcell_abs-value": "16", "confirm": "on", "confirmed_values": token}
    assert clinician_client.post(URL, changed).status_code == 200
    assert not LabResult.objects.exists()

    confirmed = {**data, "confirm": "on", "confirmed_values": token}
    assert clinician_client.post(URL, confirmed).status_code == 302
    bcells = LabResult.objects.get(analyte=units.PB_BCELL_ABS)
    assert bcells.plausibility_confirmed and bcells.plausibility_confirmed_by == clinician
    assert bcells.history.get().plausibility_confirmed


def test_a_hard_limit_cannot_be_confirmed(clinician_client, infused_patient):
    data = sample_data("2025-03-15", alc=("4321", units.GIGA_PER_L, ""))
    data.update(confirm="on", confirmed_values="alc=4321 10^9/L")
    response = clinician_client.post(URL, data)
    assert response.status_code == 200
    assert "is impossible" in sample_row_errors(response.content.decode(), "alc")[0]
    assert not LabResult.objects.exists()


def test_a_correction_to_an_unusual_value_asks_for_the_confirmation_too(
    clinician_client, infused_patient
):
    assert clinician_client.post(URL, sample_data("2025-03-15", alc="900")).status_code == 302
    alc = LabResult.objects.get()
    edit = f"/patients/CT-0001/lab/{alc.pk}/edit/"
    data = {
        "analyte": units.ALC,
        "collected_at": "2025-03-15T08:00",
        "value": "60000",
        "unit": units.CELLS_PER_UL,
        "qualifier": "",
        "method": "",
    }
    response = clinician_client.post(edit, data)
    assert response.status_code == 200
    assert "unusually high" in field_errors(response.content.decode(), "value")[0]
    assert clinician_client.post(edit, {**data, "plausibility_confirmed": "on"}).status_code == 302
    alc.refresh_from_db()
    assert alc.value == 60000 and alc.plausibility_confirmed


def test_infusion_number_zero_and_a_negative_dose_get_plain_messages(clinician_client, patient):
    response = clinician_client.post(
        "/patients/CT-0001/infusion/add/",
        _infusion_post(infusion_number="0", dose_cells_per_kg="-5"),
    )
    page = response.content.decode()
    assert field_errors(page, "infusion_number") == [
        "The first CAR-T infusion is number 1; a number is at least 1."
    ]
    assert field_errors(page, "dose_cells_per_kg") == ["A dose cannot be negative."]
    assert "Constraint" not in page and "infusion_dose_not_negative" not in page
    assert not Infusion.objects.exists()


@pytest.mark.parametrize(
    "url",
    [
        "/patients/?q=%00",
        "/patients/?q=%00&page=%00",
        "/patients/?page=-1",
        "/alerts/?status=%00&severity=%00&page=x",
        "/dashboard/?center=%00&product=%00",
    ],
)
def test_query_parameters_that_do_not_parse_are_handled(clinician_client, url):
    assert clinician_client.get(url).status_code in (200, 400)


def test_an_export_of_a_snapshot_that_is_not_a_number_is_a_400(clinician_client):
    for snapshot in ("abc", "1" * 30, "-1"):
        response = clinician_client.get(f"/dashboard/export.csv?snapshot={snapshot}")
        assert response.status_code == 400
        assert b"snapshot must be the number" in response.content
    # A NUL byte is refused before any view, with its own message (issue 21).
    response = clinician_client.get("/dashboard/export.csv?snapshot=%00")
    assert response.status_code == 400
    assert b"NUL byte" in response.content
