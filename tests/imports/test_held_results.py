"""Held results: a result a feed could not place is kept, imported once its patient is
registered or its code or unit mapped (through the one import path), dismissed only with a
reason."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError

from imports.codes import ucum_unit
from imports.held import held_result_dismiss, held_result_record, held_results_retry
from imports.models import (
    HELD,
    HELD_DISMISSED,
    HELD_IMPORTED,
    REFUSED_BY_CHECKS,
    UNKNOWN_PATIENT,
    UNMAPPED_CODE,
    UNMAPPED_UNIT,
    CodeMapping,
    HeldResult,
    UnitAlias,
)
from patients import units
from patients.models import LabResult, Patient
from patients.services import patient_save
from tests.factories import InfusionFactory, PatientFactory, UserFactory

pytestmark = pytest.mark.django_db


def _hold(center, **given):
    values = {
        "center": center,
        "source": "hl7",
        "sender": "LAB|HOSP",
        "reason": UNKNOWN_PATIENT,
        "reason_text": "No patient with MRN 4711.",
        "identifier": "4711",
        "identifier_kind": "mrn",
        "code_system": "L",
        "code": "CD19ABS",
        "value": "12",
        "unit": "/uL",
        "collected_at_text": "202503100800",  # no offset: the center's local time
        "raw": "OBX|1|NM|CD19ABS^CD19 abs^L||12|/uL|||||F",
    }
    values.update(given)
    return held_result_record(**values)


@pytest.fixture
def cd19_code(center):
    return CodeMapping.objects.create(
        center=center, system="L", code="CD19ABS", analyte="pb_bcell_abs"
    )


def test_an_unknown_patient_is_held_and_imported_once_registered(
    center, cd19_code, clinician, django_capture_on_commit_callbacks
):
    held = _hold(center)
    assert HeldResult.objects.get().state == HELD
    with django_capture_on_commit_callbacks(execute=True):
        patient = patient_save(
            patient=Patient(center=center, study_id="CT-0900", mrn="4711", sex="F"),
            user=clinician,
        )
    held.refresh_from_db()
    assert held.state == HELD_IMPORTED
    lab = LabResult.objects.get(patient=patient)
    assert held.imported_result == lab
    assert (lab.analyte, lab.value, lab.unit) == ("pb_bcell_abs", Decimal(12), units.CELLS_PER_UL)
    # 08:00 in Berlin (CET in March) is 07:00 UTC.
    assert lab.collected_at.isoformat() == "2025-03-10T07:00:00+00:00"
    assert lab.history.get().history_user.username == "feed-hl7"
    # Retrying again imports nothing twice.
    assert held_results_retry(center=center).imported == 0
    assert LabResult.objects.count() == 1


def test_an_unmapped_code_is_imported_once_mapped_and_a_unit_once_aliased(
    center, django_capture_on_commit_callbacks
):
    patient = PatientFactory(center=center, study_id="CT-0901")
    InfusionFactory(patient=patient, infusion_date=date(2025, 3, 1))
    by_code = _hold(
        center,
        identifier="CT-0901",
        identifier_kind="study_id",
        reason=UNMAPPED_CODE,
        reason_text="unmapped",
        code="B19",
    )
    by_unit = _hold(
        center,
        identifier="CT-0901",
        identifier_kind="study_id",
        reason=UNMAPPED_UNIT,
        reason_text="unmapped",
        code="LYM",
        value="1,2",
        unit="G/l",
        collected_at_text="2025-03-11T08:00:00+01:00",
    )
    assert held_results_retry(center=center).still_held == 2
    by_code.refresh_from_db()
    assert by_code.reason == UNMAPPED_CODE and "B19" in by_code.reason_text
    with django_capture_on_commit_callbacks(execute=True):
        CodeMapping.objects.create(center=center, code="B19", analyte="pb_bcell_abs")
    by_code.refresh_from_db()
    assert by_code.state == HELD_IMPORTED
    with django_capture_on_commit_callbacks(execute=True):
        CodeMapping.objects.create(center=center, code="LYM", analyte="alc")
    by_unit.refresh_from_db()
    assert (by_unit.state, by_unit.reason) == (HELD, UNMAPPED_UNIT)  # "G/l" is gauss per litre
    assert "G/l" in by_unit.reason_text
    with django_capture_on_commit_callbacks(execute=True):
        UnitAlias.objects.create(center=center, text="G/l", unit=units.GIGA_PER_L)
    by_unit.refresh_from_db()
    assert by_unit.state == HELD_IMPORTED
    alc = by_unit.imported_result
    assert (alc.value, alc.canonical_value) == (Decimal("1.2"), Decimal(1200))


def test_a_result_the_checks_refuse_on_retry_stays_held_with_their_words(center, cd19_code):
    patient = PatientFactory(center=center, study_id="CT-0902", mrn="4711")
    InfusionFactory(patient=patient, infusion_date=date(2025, 3, 1))
    _hold(center, value="200000")  # over the hard limit of 100,000 cells/uL
    assert held_results_retry(center=center).imported == 0
    held = HeldResult.objects.get()
    assert held.state == HELD and held.reason == REFUSED_BY_CHECKS
    assert held.reason_text
    assert not LabResult.objects.exists()


def test_a_result_of_another_center_is_not_placed_with_a_patient_of_this_one(
    center, other_center, cd19_code
):
    PatientFactory(center=other_center, study_id="CT-0903", mrn="4711")
    _hold(center)
    assert held_results_retry().still_held == 1
    assert not LabResult.objects.exists()


def test_dismissing_needs_a_reason_and_records_who(center, clinician):
    held = _hold(center)
    with pytest.raises(ValidationError, match="Say why"):
        held_result_dismiss(held=held, user=clinician, reason="  ")
    held_result_dismiss(held=held, user=clinician, reason="Test message from the lab.")
    held.refresh_from_db()
    assert (held.state, held.dismissed_by, held.dismissal_reason) == (
        HELD_DISMISSED,
        clinician,
        "Test message from the lab.",
    )
    with pytest.raises(ValidationError, match="already dismissed"):
        held_result_dismiss(held=held, user=UserFactory(), reason="again")
    assert held_results_retry(center=center).imported == 0


@pytest.mark.parametrize(
    ("analyte", "text", "unit"),
    [
        ("pb_bcell_abs", "/uL", units.CELLS_PER_UL),
        ("pb_bcell_abs", "{cells}/uL", units.CELLS_PER_UL),
        ("pb_bcell_abs", "/mm3", units.CELLS_PER_UL),
        ("alc", "10*3/uL", units.GIGA_PER_L),
        ("alc", "10*3/mm3", units.GIGA_PER_L),
        ("alc", "10*9/L", units.GIGA_PER_L),
        ("alc", "/nL", units.GIGA_PER_L),
        ("alc", "10*6/L", units.CELLS_PER_UL),
        ("pb_bcell_pct", "%", units.PERCENT_LYMPHOCYTES),
        ("bm_mrd_ngs", "1", units.FRACTION),
        ("bm_car_copies", "{copies}/ug", units.COPIES_PER_UG),
        ("alc", "g/dL", None),
        ("alc", "10*12/L", None),
        ("alc", "G/L", None),
        ("alc", "not a unit", None),
    ],
)
def test_ucum_units_are_read_by_their_quantity(analyte, text, unit):
    assert ucum_unit(analyte, text) == unit


def test_the_queue_page_shows_what_from_whom_why_and_dismisses_with_a_reason(
    center, other_center, clinician_client
):
    held = _hold(center)
    _hold(other_center, identifier="OTHER-CENTER-ID")
    page = clinician_client.get("/imports/held/")
    assert page.status_code == 200
    text = page.content.decode()
    for shown in ("LAB|HOSP", "4711", "CD19ABS", "202503100800", "No patient with MRN 4711."):
        assert shown in text
    assert "OTHER-CENTER-ID" not in text  # another center's queue is not shown
    refused = clinician_client.post(f"/imports/held/{held.pk}/dismiss/", {"reason": ""})
    assert refused.status_code == 302
    held.refresh_from_db()
    assert held.state == HELD
    clinician_client.post(f"/imports/held/{held.pk}/dismiss/", {"reason": "Sent twice."})
    held.refresh_from_db()
    assert (held.state, held.dismissal_reason) == (HELD_DISMISSED, "Sent twice.")
    other = HeldResult.objects.get(identifier="OTHER-CENTER-ID")
    assert (
        clinician_client.post(f"/imports/held/{other.pk}/dismiss/", {"r": "x"}).status_code == 404
    )
    assert clinician_client.post("/imports/held/retry/").status_code == 302


def test_the_lab_api_still_refuses_an_unknown_patient_and_holds_its_values(
    center, lab_system, clinician, django_capture_on_commit_callbacks
):
    body = {
        "samples": [
            {
                "study_id": "CT-0950",
                "collected_at": "2025-03-10T08:00:00",
                "values": [
                    {"analyte": "pb_bcell_abs", "value": "12", "unit": "cells/uL"},
                    {"analyte": "alc", "qualifier": "undetectable", "unit": "cells/uL"},
                ],
            }
        ]
    }
    for _ in range(2):  # sent again: held once
        answer = lab_system.post("/api/v1/lab-results/", body, format="json")
        assert answer.status_code == 400
        assert "No patient CT-0950" in answer.json()["errors"]["samples[0].study_id"][0]
        assert [h["place"] for h in answer.json()["held"]] == [
            "samples[0].values[0]",
            "samples[0].values[1]",
        ]
    assert HeldResult.objects.filter(source="lab-api", state=HELD).count() == 2
    patient = PatientFactory(center=center, study_id="CT-0950")
    InfusionFactory(patient=patient, infusion_date=date(2025, 3, 1))
    with django_capture_on_commit_callbacks(execute=True):
        patient_save(patient=patient, user=clinician)
    assert HeldResult.objects.filter(state=HELD_IMPORTED).count() == 2
    stored = {r.analyte: r for r in LabResult.objects.filter(patient=patient)}
    assert stored["pb_bcell_abs"].value == Decimal(12)
    assert stored["alc"].qualifier == units.UNDETECTABLE


def test_the_listener_is_alive_while_its_heartbeat_is_at_most_two_periods_old(settings):
    from datetime import UTC, datetime, timedelta

    from imports.models import HL7Listener
    from imports.selectors import hl7_listener_alive

    settings.HL7_HEARTBEAT_SECONDS = 15
    beat = datetime(2025, 11, 3, 10, 0, tzinfo=UTC)
    assert not hl7_listener_alive(now=beat)
    HL7Listener.objects.create(address="127.0.0.1:2575", pid=1, started_at=beat, heartbeat_at=beat)
    assert hl7_listener_alive(now=beat + timedelta(seconds=30))
    assert not hl7_listener_alive(now=beat + timedelta(seconds=30, microseconds=1))
