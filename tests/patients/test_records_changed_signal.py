"""Patients announce, monitoring listens: every clinical write sends `records_changed` inside its
transaction, and monitoring's receiver (connected in its AppConfig) keeps the alerts in line."""

from __future__ import annotations

from datetime import date, datetime, time
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from django.db import connection

from monitoring.models import Alert
from patients.models import LabResult
from patients.services import (
    LabValue,
    clinical_record_delete,
    clinical_record_save,
    lab_results_record,
)
from patients.signals import records_changed
from patients.units import CELLS_PER_UL, PB_BCELL_ABS, UNDETECTABLE
from tests.factories import BERLIN, InfusionFactory, PatientFactory

pytestmark = pytest.mark.usefixtures("frozen_now")


@pytest.fixture
def heard():
    """What a receiver saw: the patient ids and whether it ran inside a transaction."""
    calls = []

    def receiver(sender, *, patient_ids, **kwargs):
        calls.append((list(patient_ids), connection.in_atomic_block))

    records_changed.connect(receiver, dispatch_uid="test-heard")
    yield calls
    records_changed.disconnect(dispatch_uid="test-heard")


def _count(patient, value: str | None, day: int = 7) -> list[LabResult]:
    """A PB B-cell count `day` days after a 1 March 2025 infusion; None: undetectable."""
    entry = LabValue(
        PB_BCELL_ABS,
        None if value is None else Decimal(value),
        CELLS_PER_UL,
        UNDETECTABLE if value is None else "",
    )
    return lab_results_record(
        patient=patient,
        collected_at=datetime.combine(date(2025, 3, 1 + day), time(8), tzinfo=BERLIN),
        values=[entry],
        entered_by=None,
    )


def test_every_write_announces_the_patient_inside_its_transaction(center, heard):
    patient = PatientFactory(center=center)
    infusion = InfusionFactory.build(patient=patient, infusion_date=date(2025, 3, 1))
    clinical_record_save(instance=infusion, user=None)
    (result,) = _count(patient, "0")
    clinical_record_delete(instance=result, user=None)
    assert heard == [([patient.pk], True)] * 3


def _early_regenerator(center):
    """Aplasia on day 7, B cells back on day 20: early regeneration, if monitoring listens."""
    patient = PatientFactory(center=center)
    InfusionFactory(patient=patient, infusion_date=date(2025, 3, 1))
    _count(patient, None, day=7)
    _count(patient, "7.31", day=20)
    return Alert.objects.filter(patient=patient, rule="early_regeneration").count()


def test_monitoring_listens_through_the_signal_alone(center):
    assert _early_regenerator(center) == 1
    # Without monitoring's receiver nobody derives alerts: patients does not name monitoring.
    assert records_changed.disconnect(dispatch_uid="monitoring.alerts_sync")
    try:
        assert _early_regenerator(center) == 0
    finally:
        from monitoring.apps import _alerts_sync_on_records_changed

        records_changed.connect(
            _alerts_sync_on_records_changed, dispatch_uid="monitoring.alerts_sync"
        )


def test_a_failing_receiver_rolls_the_write_back(center):
    patient = PatientFactory(center=center)

    def refuse(sender, **kwargs):
        raise ValidationError("derived state could not be kept")

    records_changed.connect(refuse, dispatch_uid="test-refuse")
    try:
        with pytest.raises(ValidationError):
            _count(patient, "0")
    finally:
        records_changed.disconnect(dispatch_uid="test-refuse")
    assert not LabResult.objects.filter(patient=patient).exists()
