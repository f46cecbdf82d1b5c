"""The bulk sweep never loses a clinician's concurrent write.

A batch locks its patients' rows with SKIP LOCKED and reads their timelines after the lock is
held. A patient whose row a clinician's transaction holds is skipped by the batch and swept again
at the end of the run, waiting for that transaction: the sweep then reads what the clinician
committed.
"""

from __future__ import annotations

import threading
from datetime import date, datetime, time
from decimal import Decimal

import pytest
from django.db import connection, transaction

from monitoring import sweep, tasks
from monitoring.models import Alert
from patients.models import Patient
from patients.units import UNDETECTABLE
from tests.factories import BERLIN, InfusionFactory, LabResultFactory, PatientFactory


@pytest.fixture(autouse=True)
def _no_broker(monkeypatch):
    # Committed alerts enqueue their e-mails; no worker listens here, so record, don't publish.
    monkeypatch.setattr(tasks.send_pending_notifications, "apply_async", lambda *a, **k: None)


def _count(patient, on: date, value: Decimal | None):
    return LabResultFactory(
        patient=patient,
        collected_at=datetime.combine(on, time(8), tzinfo=BERLIN),
        value=value,
        qualifier="" if value is not None else UNDETECTABLE,
    )


def test_a_patient_locked_by_a_clinician_is_swept_after_their_commit(transactional_db, center):
    busy, other = (PatientFactory(center=center, study_id=f"CT-L{i}") for i in (1, 2))
    for patient in (busy, other):
        InfusionFactory(patient=patient, infusion_date=date(2025, 3, 1))
        _count(patient, date(2025, 3, 8), None)  # day 7: aplasia
    locked, errors = threading.Event(), []

    def clinician_saves():
        try:
            with transaction.atomic():
                Patient.objects.select_for_update().get(pk=busy.pk)
                locked.set()
                threading.Event().wait(1.0)  # the sweep's batch runs meanwhile
                _count(busy, date(2025, 3, 31), Decimal(12))  # day 30: B cells are back
        except BaseException as error:
            errors.append(error)
        finally:
            connection.close()

    thread = threading.Thread(target=clinician_saves)
    thread.start()
    assert locked.wait(10)
    counts = sweep.sweep_patients([busy.pk, other.pk], as_of=date(2025, 4, 1))
    thread.join(10)

    assert not errors
    assert counts["skipped"] == 1 and counts["patients"] == 2
    # Read after the clinician's commit: the regeneration they entered raised its alert.
    assert list(Alert.objects.filter(patient=busy).values_list("rule", flat=True)) == [
        "early_regeneration"
    ]
