"""The import path checks with issue 8's rules, from facts loaded once per batch: study IDs
compared without regard to case (within the batch and against the stored ones), plausibility per
sample (the center's limits, the same sample's other values, the previous value stored or earlier
in the batch), confirmation recorded with the importer, numbers and local times read alike."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
import time_machine

from imports.services import import_scope, records_import
from imports.sheet_records import rows_batch
from patients.ingest.records import Batch, LabValueRecord, PatientRecord, SampleRecord
from patients.models import LabResult, Patient
from patients.validation import STUDY_ID_TAKEN
from tests.factories import BERLIN, InfusionFactory, PatientFactory

NOW = datetime(2025, 6, 1, 10, tzinfo=UTC)
pytestmark = pytest.mark.usefixtures("travel")


@pytest.fixture
def travel():
    with time_machine.travel(NOW, tick=False):
        yield


@pytest.fixture
def data_manager(clinician):
    return clinician


def _errors(batch, user) -> dict:
    outcome = records_import(batch=batch, scope=import_scope(user), notify=False)
    return outcome.as_json().get("errors", {})


def test_study_ids_differing_only_in_case_are_one_id(data_manager):
    PatientFactory(center=data_manager.profile.center, study_id="CT-0007")
    batch = Batch(
        patients=[
            PatientRecord(place="patients row 2", study_id="ct-0007"),
            PatientRecord(place="patients row 3", study_id="CT-0100"),
            PatientRecord(place="patients row 4", study_id="ct-0100"),
        ]
    )
    errors = _errors(batch, data_manager)
    assert errors["patients row 2.study_id"] == [STUDY_ID_TAKEN]
    assert errors["patients row 4.study_id"] == ["Also given at patients row 3."]
    assert Patient.objects.count() == 1


def _sample(place, study_id, when, value, *, analyte="pb_bcell_abs", confirmed=False):
    return SampleRecord(
        place=place,
        study_id=study_id,
        collected_at=when,
        values=[
            LabValueRecord(
                f"{place}.values[0]", analyte, Decimal(value), "cells/uL", confirmed=confirmed
            )
        ],
    )


def test_a_unit_slip_against_an_earlier_sample_of_the_same_batch_needs_confirmation(
    data_manager,
):
    patient = PatientFactory(center=data_manager.profile.center, study_id="CT-0200")
    InfusionFactory(patient=patient, infusion_date=date(2025, 3, 1))
    first = datetime(2025, 4, 1, 8, tzinfo=BERLIN)
    later = datetime(2025, 4, 8, 8, tzinfo=BERLIN)
    batch = Batch(
        samples=[  # the later one first: the previous value is by time, not by place
            _sample("samples[0]", "CT-0200", later, "1500"),
            _sample("samples[1]", "CT-0200", first, "1"),
        ]
    )
    (message,) = _errors(batch, data_manager)["samples[0].values[0].value"]
    assert "is unusual" not in message and "previous" in message
    assert not LabResult.objects.exists()

    batch.samples[0].values[0].confirmed = True
    assert _errors(batch, data_manager) == {}
    slip = LabResult.objects.get(collected_at=later)
    assert slip.plausibility_confirmed and slip.plausibility_confirmed_by == data_manager
    assert "previous" in slip.plausibility_warning


def test_b_cells_above_a_stored_alc_of_the_same_sample_are_refused(data_manager):
    patient = PatientFactory(center=data_manager.profile.center, study_id="CT-0300")
    InfusionFactory(patient=patient, infusion_date=date(2025, 3, 1))
    when = datetime(2025, 4, 1, 8, tzinfo=BERLIN)
    assert (
        _errors(
            Batch(samples=[_sample("s[0]", "CT-0300", when, "300", analyte="alc")]), data_manager
        )
        == {}
    )
    errors = _errors(Batch(samples=[_sample("s[1]", "CT-0300", when, "400")]), data_manager)
    assert "B cells are lymphocytes" in errors["s[1].values[0].value"][0]
    assert LabResult.objects.count() == 1


def test_a_spreadsheet_reads_numbers_and_local_times_like_the_pages(data_manager):
    PatientFactory(center=data_manager.profile.center, study_id="CT-0400")  # Europe/Berlin
    row = {"study_id": "CT-0400", "analyte": "alc", "unit": "10^9/L"}
    rows = {
        "labs": [
            {**row, "collected_at": "2025-04-01 23:30", "value": "0,9"},
            {**row, "collected_at": "2025-04-02 08:00", "value": "1,234"},
            {**row, "collected_at": "2025-03-30 02:30", "value": "1.1"},
        ]
    }
    batch, problems = rows_batch(rows, import_scope(data_manager))
    assert batch.samples[0].values[0].value == Decimal("0.9")
    assert batch.samples[0].collected_at == datetime(2025, 4, 1, 23, 30, tzinfo=BERLIN)
    assert [(p.place, p.field) for p in problems] == [
        ("labs row 3", "value"),
        ("labs row 4", "collected_at"),
    ]
    assert "does not exist in Europe/Berlin" in problems[1].message
