"""Two clinicians saving counts for one patient at the same moment get one alert, not two.

Each save locks the patient row before it re-evaluates the alerts, so the second waits for the
first to commit and then finds the alert already there. Real threads on real connections (hence
`transactional_db`): a test transaction would hide the race.
"""

from __future__ import annotations

import threading
from datetime import date, datetime, time
from decimal import Decimal

import pytest
from django.db import connection

from monitoring import tasks
from monitoring.models import OPEN, Alert, AlertEvent, Notification
from patients.services import LabValue, lab_results_record
from patients.units import CELLS_PER_UL, PB_BCELL_ABS, UNDETECTABLE
from tests.factories import BERLIN, InfusionFactory, PatientFactory


@pytest.fixture(autouse=True)
def _no_broker(monkeypatch):
    # Committed alerts enqueue their e-mails; no worker listens here, so record, don't publish.
    enqueued = []
    monkeypatch.setattr(
        tasks.send_pending_notifications,
        "apply_async",
        lambda *args, **kwargs: enqueued.append(kwargs),
    )
    return enqueued


def _count(day_date: date, hour: int, value: Decimal | None) -> tuple[datetime, LabValue]:
    qualifier = "" if value is not None else UNDETECTABLE
    return (
        datetime.combine(day_date, time(hour), tzinfo=BERLIN),
        LabValue(PB_BCELL_ABS, value, CELLS_PER_UL, qualifier),
    )


def test_two_concurrent_regeneration_counts_give_one_alert(
    transactional_db, frozen_now, clinician, center, _no_broker
):
    patient = PatientFactory(center=center, study_id="CT-0201")
    patient.hematologists.add(clinician)
    InfusionFactory(patient=patient, infusion_date=date(2025, 3, 1))
    collected_at, aplasia = _count(date(2025, 3, 8), 8, None)  # day 7: undetectable
    lab_results_record(
        patient=patient, collected_at=collected_at, values=[aplasia], entered_by=clinician
    )

    # Two detectable counts of different samples (day 30 morning and evening): each on its own
    # completes "detectable after aplasia within 45 days".
    samples = [
        _count(date(2025, 3, 31), 8, Decimal("4")),
        _count(date(2025, 3, 31), 18, Decimal("9")),
    ]
    barrier = threading.Barrier(len(samples))
    errors: list[BaseException] = []

    def save(collected_at, value):
        try:
            barrier.wait(timeout=10)
            lab_results_record(
                patient=patient, collected_at=collected_at, values=[value], entered_by=clinician
            )
        except BaseException as error:  # reported to the main thread below
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=save, args=sample) for sample in samples]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert not any(thread.is_alive() for thread in threads)
    assert errors == []
    (alert,) = Alert.objects.filter(patient=patient, rule="early_regeneration")
    assert alert.status == OPEN
    assert alert.evidence[-1]["value"] == "4"  # the first detectable sample of the day
    assert AlertEvent.objects.filter(alert=alert).count() == 1
    assert Notification.objects.filter(alert=alert).count() == 1
    assert _no_broker  # the committed alert asked for its e-mail to be sent
