"""The patient list: find a patient by study ID and see the last PB B-cell count at a glance."""

from datetime import date, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from patients import units
from tests.factories import InfusionFactory, LabResultFactory, PatientFactory
from tests.patients.page_text import table_rows

BERLIN = ZoneInfo("Europe/Berlin")


def list_rows(client, **query) -> dict[str, list[str]]:
    response = client.get("/patients/", query)
    assert response.status_code == 200
    rows = table_rows(response.content.decode(), "patient-list")
    return {row[0].split()[0]: row for row in rows if len(row) > 1}


def test_search_by_study_id_finds_only_that_patient(clinician_client, center):
    for study_id in ("CT-0007", "CT-0070", "CT-0123"):
        PatientFactory(center=center, study_id=study_id)
    assert set(list_rows(clinician_client, q="0123")) == {"CT-0123"}
    assert set(list_rows(clinician_client, q="ct-0123")) == {"CT-0123"}  # any case
    assert set(list_rows(clinician_client, q="007")) == {"CT-0007", "CT-0070"}
    assert set(list_rows(clinician_client, q=" CT-0070 ")) == {"CT-0070"}
    assert set(list_rows(clinician_client)) == {"CT-0007", "CT-0070", "CT-0123"}


def test_a_search_without_a_match_says_so(clinician_client, center):
    PatientFactory(center=center, study_id="CT-0007")
    page = clinician_client.get("/patients/", {"q": "CT-9"}).content.decode()
    assert "No patients match “CT-9”." in page


def test_search_does_not_look_at_restricted_identifiers(clinician_client, center):
    # The list shows pseudonyms only; a name typed into the search must not reveal a patient.
    PatientFactory(center=center, study_id="CT-0007", full_name="Erika Mustermann", mrn="MRN-4242")
    assert list_rows(clinician_client, q="Mustermann") == {}
    assert list_rows(clinician_client, q="MRN-4242") == {}


def test_the_last_bcell_count_shows_with_its_day_after_infusion(clinician_client, center):
    patient = PatientFactory(center=center, study_id="CT-0001")
    InfusionFactory(patient=patient, infusion_date=date(2025, 3, 1))
    LabResultFactory(
        patient=patient,
        collected_at=datetime(2025, 3, 8, 8, tzinfo=BERLIN),
        value=None,
        qualifier=units.UNDETECTABLE,
        canonical_value=None,
    )
    LabResultFactory(
        patient=patient, collected_at=datetime(2025, 3, 22, 8, tzinfo=BERLIN), value=Decimal(12)
    )
    # A later ALC is not a B-cell count and must not replace it.
    LabResultFactory(
        patient=patient,
        analyte=units.ALC,
        value=Decimal("1.1"),
        unit=units.GIGA_PER_L,
        collected_at=datetime(2025, 3, 29, 8, tzinfo=BERLIN),
    )
    row = list_rows(clinician_client)["CT-0001"]
    infusion_cell, bcell_cell = row[3], row[4]
    assert infusion_cell == "1 Mar 2025"
    assert bcell_cell == "12 cells/µL day 21"


def test_an_undetectable_last_count_shows_as_undetectable(clinician_client, center):
    patient = PatientFactory(center=center, study_id="CT-0001")
    InfusionFactory(patient=patient, infusion_date=date(2025, 3, 1))
    LabResultFactory(
        patient=patient,
        collected_at=datetime(2025, 3, 15, 0, 30, tzinfo=BERLIN),
        value=None,
        qualifier=units.UNDETECTABLE,
        canonical_value=None,
    )
    # 00:30 in Berlin is still 14 March in UTC: the day is counted in the center's zone.
    assert list_rows(clinician_client)["CT-0001"][4] == "Undetectable day 14"


def test_a_patient_without_infusion_or_count_says_so(clinician_client, center):
    PatientFactory(center=center, study_id="CT-0001")
    row = list_rows(clinician_client)["CT-0001"]
    assert (row[3], row[4]) == ("none", "no count")


def test_a_baseline_count_before_infusion_is_labelled_baseline(clinician_client, center):
    patient = PatientFactory(center=center, study_id="CT-0001")
    InfusionFactory(patient=patient, infusion_date=date(2025, 3, 1))
    LabResultFactory(
        patient=patient, collected_at=datetime(2025, 2, 24, 8, tzinfo=BERLIN), value=Decimal(150)
    )
    assert list_rows(clinician_client)["CT-0001"][4] == "150 cells/µL baseline (day -5)"


def _cohort(center, size: int, start: int = 0):
    for index in range(start, start + size):
        patient = PatientFactory(center=center, study_id=f"CT-{index:04d}")
        InfusionFactory(patient=patient, infusion_date=date(2025, 3, 1))
        for day in (8, 15):
            LabResultFactory(
                patient=patient,
                value=Decimal(day % 2),
                collected_at=datetime(2025, 3, day, 8, tzinfo=BERLIN),
            )


def test_the_list_takes_as_many_queries_for_30_patients_as_for_5(
    clinician_client, center, django_assert_max_num_queries
):
    _cohort(center, 5)
    clinician_client.get("/patients/")  # warm the session and permission caches
    with CaptureQueriesContext(connection) as five:
        assert len(list_rows(clinician_client)) == 5
    _cohort(center, 25, start=5)
    with django_assert_max_num_queries(len(five)):
        rows = list_rows(clinician_client)
    assert len(rows) == 30
    assert rows["CT-0029"][4] == "1 cells/µL day 14"


@pytest.mark.parametrize("page_number", [1, 2])
def test_the_list_pages_through_many_patients(clinician_client, center, page_number):
    for index in range(55):
        PatientFactory(center=center, study_id=f"CT-{index:04d}")
    rows = list_rows(clinician_client, page=page_number)
    assert len(rows) == (50 if page_number == 1 else 5)
    assert ("CT-0000" in rows) == (page_number == 1)
