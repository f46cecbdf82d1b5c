"""Asking a worker to send the outbox, after commit, without ever failing or holding up a save.

No worker and no Redis server here: the broker URL points at a port where nothing listens, as
when Redis is down. (No frozen clock either: kombu's connection retries count wall-clock time,
which a frozen clock would stop; the clinical dates lie in 2025, before the real today.)
"""

from __future__ import annotations

import time as clock
from datetime import date, datetime, time
from decimal import Decimal

import pytest

from monitoring.models import OPEN, Alert, Notification
from patients.services import LabValue, lab_results_record
from patients.units import CELLS_PER_UL, PB_BCELL_ABS, UNDETECTABLE
from tests.factories import BERLIN, InfusionFactory, PatientFactory


def _count(patient, on: date, value):
    lab_results_record(
        patient=patient,
        collected_at=datetime.combine(on, time(8), tzinfo=BERLIN),
        values=[
            LabValue(PB_BCELL_ABS, value, CELLS_PER_UL, "" if value is not None else UNDETECTABLE)
        ],
        entered_by=None,
    )


@pytest.fixture
def patient(center, clinician):
    patient = PatientFactory(center=center, study_id="CT-0901")
    patient.hematologists.add(clinician)
    InfusionFactory(patient=patient, infusion_date=date(2025, 3, 1))
    _count(patient, date(2025, 3, 8), None)  # day 7: aplasia
    return patient


def test_broker_down_neither_fails_nor_holds_up_the_save(
    patient, broker_down, caplog, django_capture_on_commit_callbacks
):
    started = clock.monotonic()
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        _count(patient, date(2025, 3, 31), Decimal("7.31"))  # day 30: B cells are back
    took = clock.monotonic() - started

    assert len(callbacks) == 1
    assert "Could not enqueue notifications" in caplog.text
    assert Alert.objects.get(patient=patient, rule="early_regeneration").status == OPEN
    assert Notification.objects.get().status == "pending"  # the periodic sender's job now
    # The enqueue runs in the clinician's request after commit: with Redis down it must give
    # up at once rather than retry the connection for seconds.
    assert took < 1.0, f"the save took {took:.1f} s with the broker down"
