"""A sample's date checked as carefully as its values (issue 23): before the first infusion, after
today or far before the patient's latest sample, the date is shown as read with its day after the
infusion and what to check, and kept only once confirmed: on the sample form, through the API
(`"confirmed": true`) and in an import. All errors of the sample form come in one round."""

from datetime import date, datetime, timedelta
from decimal import Decimal

import pytest

from imports.services import import_scope, records_import
from patients.ingest.records import Batch, LabValueRecord, SampleRecord
from patients.models import LabResult
from patients.plausibility import (
    BASELINE_WINDOW_DAYS,
    FAR_BEFORE_LATEST_DAYS,
    HARD,
    SOFT,
    check_sample_date,
)
from tests.factories import BERLIN, InfusionFactory, LabResultFactory, PatientFactory
from tests.patients.conftest import INFUSED, sample_data
from tests.patients.page_text import field_errors, input_value, sample_row_errors

URL = "/patients/CT-0001/samples/add/"
TODAY = date(2025, 11, 3)  # FIXED_NOW's date in Berlin

pytestmark = pytest.mark.usefixtures("frozen_now")


def found(on, *, infusions=(INFUSED,), samples=(), today=TODAY):
    return [
        (f.level, f.check)
        for f in check_sample_date(
            on, infusion_dates=list(infusions), sample_dates=list(samples), today=today
        )
    ]


# The rule itself, at its boundaries ---------------------------------------------------------


def test_the_issue_s_date_is_named_as_read_with_its_day_and_the_order_to_check():
    # 02.12.2026 read in month/day order as 12 Feb 2026, for an infusion on 2 Nov 2026.
    (finding,) = check_sample_date(
        date(2026, 2, 12), infusion_dates=[date(2026, 11, 2)], today=date(2026, 12, 2)
    )
    assert finding.level == SOFT and finding.check == "before_first_infusion"
    assert finding.message == (
        "The collection date is more than 30 days before the first infusion. Read as 12 Feb "
        "2026, day \u2212263 after the infusion of 2 Nov 2026; if you meant 2 Dec 2026, check "
        "the order of day and month in the date field."
    )


def test_the_usual_baseline_passes_and_a_month_before_the_infusion_asks():
    # Days −1 and 0 around the infusion: a baseline sample (lymphodepletion) and day 0.
    assert BASELINE_WINDOW_DAYS == 30
    assert found(INFUSED - timedelta(days=1)) == []
    assert found(INFUSED) == []
    assert found(INFUSED - timedelta(days=30)) == []
    assert found(INFUSED - timedelta(days=31)) == [(SOFT, "before_first_infusion")]


def test_today_is_fine_and_tomorrow_is_refused():
    assert found(TODAY) == []
    assert found(TODAY + timedelta(days=1)) == [(HARD, "after_today")]


def test_far_before_the_latest_sample_is_the_limit_and_one_day_more_asks():
    latest = date(2025, 10, 20)
    limit = latest - timedelta(days=FAR_BEFORE_LATEST_DAYS)
    assert FAR_BEFORE_LATEST_DAYS == 60
    assert found(limit, samples=[latest]) == []
    assert found(limit - timedelta(days=1), samples=[latest]) == [(SOFT, "out_of_order")]
    # Later than every recorded sample: in order.
    assert found(latest + timedelta(days=5), samples=[latest]) == []


def test_a_later_infusion_counts_the_day_and_an_unswappable_date_says_check_the_report():
    (finding,) = check_sample_date(
        date(2025, 6, 25),
        infusion_dates=[date(2025, 3, 1), date(2025, 6, 1)],
        sample_dates=[date(2025, 10, 1)],
        today=TODAY,
    )
    assert finding.check == "out_of_order"
    assert "98 days before the patient's latest sample (1 Oct 2025)" in finding.message
    assert "day 24 after the infusion of 1 Jun 2025" in finding.message
    assert finding.message.endswith("check the date against the report.")


def test_without_an_infusion_only_the_calendar_counts():
    assert found(date(2020, 1, 1), infusions=()) == []
    (finding,) = check_sample_date(TODAY + timedelta(days=1), infusion_dates=[], today=TODAY)
    assert "no infusion is recorded yet" in finding.message


# The sample form ----------------------------------------------------------------------------


def test_a_sample_before_the_infusion_is_kept_only_once_its_date_is_confirmed(
    clinician_client, infused_patient
):
    data = sample_data("2025-01-29", pb_bcell_abs="15")
    response = clinician_client.post(URL, data)
    assert response.status_code == 200 and not LabResult.objects.exists()
    page = response.content.decode()
    (message,) = field_errors(page, "collected_date")
    assert message.startswith(
        "The collection date is more than 30 days before the first infusion. Read as 29 Jan "
        "2025, day \u221231 after the infusion of 1 Mar 2025; check the date against the report."
    )
    assert message.endswith("If it is correct, confirm it.")
    assert 'data-testid="plausibility-confirmation"' in page
    token = input_value(page, "confirmed_values")
    assert token == "date=2025-01-29"

    # The tick covers the date it was given for: another date is checked again.
    moved = {**data, "collected_date": "2025-01-28", "confirm": "on", "confirmed_values": token}
    assert clinician_client.post(URL, moved).status_code == 200
    assert not LabResult.objects.exists()

    confirmed = {**data, "confirm": "on", "confirmed_values": token}
    assert clinician_client.post(URL, confirmed).status_code == 302
    assert LabResult.objects.get().collected_at == datetime(2025, 1, 29, 8, tzinfo=BERLIN)
    # The usual baseline (day −1) needs no tick.
    assert clinician_client.post(URL, sample_data("2025-02-28", alc="900")).status_code == 302


def test_a_sample_far_before_the_latest_one_needs_a_confirmation(clinician_client, infused_patient):
    LabResultFactory(patient=infused_patient, collected_at=datetime(2025, 10, 1, 8, tzinfo=BERLIN))
    at_limit = clinician_client.post(URL, sample_data("2025-08-02", pb_bcell_abs="3"))
    assert at_limit.status_code == 302  # 60 days before: a late result
    past = clinician_client.post(URL, sample_data("2025-08-01", pb_bcell_abs="3"))
    assert past.status_code == 200
    (message,) = field_errors(past.content.decode(), "collected_date")
    assert "61 days before the patient's latest sample (1 Oct 2025)" in message
    assert "day 153 after the infusion of 1 Mar 2025" in message


def test_every_error_of_the_sample_comes_in_one_round(clinician_client, infused_patient):
    data = sample_data(
        "2025-01-29",
        pb_bcell_abs="15000",  # unusual: confirm
        alc="1.234,5",  # unreadable number
        bm_mrd_flow=("0.1", "% cells", "undetectable"),  # a value and a qualifier
    )
    response = clinician_client.post(URL, data)
    assert response.status_code == 200
    page = response.content.decode()
    assert "before the first infusion" in field_errors(page, "collected_date")[0]
    assert any("unusually high" in e for e in sample_row_errors(page, "pb_bcell_abs"))
    assert sample_row_errors(page, "alc")  # the number's own error, in the same answer
    assert any("not both" in e for e in sample_row_errors(page, "bm_mrd_flow"))
    # One confirmation covers both the date and the unusual value.
    assert set(input_value(page, "confirmed_values").split(";")) == {
        "pb_bcell_abs=15000 cells/uL",
        "date=2025-01-29",
    }
    assert not LabResult.objects.exists()


# The API and imports ------------------------------------------------------------------------


@pytest.fixture
def api_patient(center):
    patient = PatientFactory(center=center, study_id="CT-0101")
    InfusionFactory(patient=patient, infusion_date=date(2025, 3, 1))
    return patient


def test_the_api_refuses_a_sample_before_the_infusion_until_it_is_confirmed(
    lab_system, api_patient
):
    value = {"analyte": "pb_bcell_abs", "value": "15", "unit": "cells/uL"}
    batch = {
        "samples": [
            {"study_id": "CT-0101", "collected_at": "2025-01-29T08:00:00+01:00", "values": [value]}
        ]
    }
    response = lab_system.post("/api/v1/lab-results/", batch, format="json")
    assert response.status_code == 400
    (message,) = response.json()["errors"]["samples[0].collected_at"]
    assert "Read as 29 Jan 2025, day \u221231 after the infusion of 1 Mar 2025" in message
    assert '"confirmed": true' in message
    assert not LabResult.objects.exists()

    value["confirmed"] = True
    response = lab_system.post("/api/v1/lab-results/", batch, format="json")
    assert response.status_code in (200, 201), response.content
    assert LabResult.objects.count() == 1


def test_an_import_reports_a_date_far_out_of_order_like_an_unusual_value(clinician):
    patient = PatientFactory(center=clinician.profile.center, study_id="CT-0200")
    InfusionFactory(patient=patient, infusion_date=date(2025, 3, 1))
    LabResultFactory(patient=patient, collected_at=datetime(2025, 10, 1, 8, tzinfo=BERLIN))

    def sample(when, *, confirmed=False):
        return SampleRecord(
            place="labs row 2",
            study_id="CT-0200",
            collected_at=when,
            values=[
                LabValueRecord(
                    "labs row 2", "pb_bcell_abs", Decimal(3), "cells/uL", confirmed=confirmed
                )
            ],
        )

    def errors(batch):
        outcome = records_import(batch=batch, scope=import_scope(clinician), notify=False)
        return outcome.as_json().get("errors", {})

    (message,) = errors(Batch(samples=[sample(datetime(2025, 8, 1, 8, tzinfo=BERLIN))]))[
        "labs row 2.collected_at"
    ]
    assert "61 days before the patient's latest sample (1 Oct 2025)" in message
    assert message.endswith("If it is correct, confirm it.")
    assert LabResult.objects.count() == 1
    assert errors(Batch(samples=[sample(datetime(2025, 8, 2, 8, tzinfo=BERLIN))])) == {}
    confirmed = sample(datetime(2025, 7, 1, 8, tzinfo=BERLIN), confirmed=True)
    assert errors(Batch(samples=[confirmed])) == {}
    assert LabResult.objects.count() == 3


def test_the_record_forms_show_field_and_cross_field_errors_in_one_round(
    clinician_client, infused_patient
):
    # A therapy whose start date cannot be read and whose agent is of another category.
    response = clinician_client.post(
        "/patients/CT-0001/therapy/add/",
        {"start_date": "31.02.2025", "category": "immunomodulatory", "agent": "chemotherapy"},
    )
    assert response.status_code == 200
    page = response.content.decode()
    assert field_errors(page, "start_date")  # the field's own error
    assert field_errors(page, "category") == ["Chemotherapy is anti-leukemic therapy."]

    # A correction whose value cannot be read, collected in the future.
    LabResultFactory(patient=infused_patient, collected_at=datetime(2025, 3, 15, 8, tzinfo=BERLIN))
    result = LabResult.objects.get()
    response = clinician_client.post(
        f"/patients/CT-0001/lab/{result.pk}/edit/",
        {
            "analyte": result.analyte,
            "collected_at": "2025-11-04T08:00",
            "value": "1.234,5",
            "unit": result.unit,
            "qualifier": "",
            "method": "",
        },
    )
    page = response.content.decode()
    assert "more than one separator" in field_errors(page, "value")[0]
    assert field_errors(page, "collected_at") == ["The collection time is in the future."]
