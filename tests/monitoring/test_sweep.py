"""The periodic sweep: the time-based B-cell count reminder, and idempotence.

The early-regeneration rule can only see a regeneration that a count documents, so inside the
45-day window a count older than 7 days raises a reminder; only a sweep can notice that time has
passed. The sweep runs hourly, so on one day it must change nothing after its first run: no
re-saved alert, no new history row, no second e-mail.

The clock runs inside the window: the day-7 count is entered on its day (8 March 2025), the sweep
runs on 20 March (day 19), so a new count withdraws the reminder because of the count, not
because the window has ended.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal

import pytest
import time_machine

from monitoring import services
from monitoring.models import OPEN, REMINDER, WITHDRAWN, Alert, AlertEvent, Notification
from patients.services import LabValue, lab_results_record
from patients.units import CELLS_PER_UL, PB_BCELL_ABS, UNDETECTABLE
from tests.factories import BERLIN, InfusionFactory, PatientFactory

INFUSED = date(2025, 3, 1)
SWEEP_DAY = date(2025, 3, 20)  # day 19; the last count (day 7) is 12 days old


@pytest.fixture
def clock():
    with time_machine.travel(datetime(2025, 3, 8, 11, 0, tzinfo=UTC), tick=False) as traveller:
        yield traveller


@pytest.fixture
def patient(center, clinician, clock):
    """Aplasia documented on day 7 (entered that day); then the clock moves to the sweep day."""
    patient = PatientFactory(center=center, study_id="CT-0301")
    patient.hematologists.add(clinician)
    InfusionFactory(patient=patient, infusion_date=INFUSED)
    bcell_count(patient, date(2025, 3, 8), None, user=clinician)
    assert not Alert.objects.exists()  # a fresh count: nothing to remind of
    clock.move_to(datetime(2025, 3, 20, 7, 0, tzinfo=UTC))
    return patient


def bcell_count(patient, on: date, value: Decimal | None, *, user, hour: int = 8):
    qualifier = "" if value is not None else UNDETECTABLE
    return lab_results_record(
        patient=patient,
        collected_at=datetime.combine(on, time(hour), tzinfo=BERLIN),
        values=[LabValue(PB_BCELL_ABS, value, CELLS_PER_UL, qualifier)],
        entered_by=user,
    )


def state() -> dict:
    """Everything a sweep could change, to compare before and after."""
    return {
        "alerts": sorted(Alert.objects.values_list("pk", "status", "updated_at", "day")),
        "events": AlertEvent.objects.count(),
        "notifications": sorted(Notification.objects.values_list("pk", "status")),
    }


def test_sweep_raises_a_count_due_reminder_inside_the_window(patient):
    counts = services.sweep(as_of=SWEEP_DAY)

    assert counts == {"patients": 1, "changed": 1}
    reminder = Alert.objects.get(patient=patient)
    assert (reminder.rule, reminder.severity, reminder.status) == (
        "bcell_count_due",
        REMINDER,
        OPEN,
    )
    assert reminder.day == 19
    assert reminder.details["days_since_last_count"] == 12
    assert [(e["role"], e["day"]) for e in reminder.evidence] == [("last_count", 7)]
    assert Notification.objects.filter(alert=reminder).count() == 1


def test_a_count_seven_days_old_is_not_yet_due(patient):
    services.sweep(as_of=date(2025, 3, 15))  # day 14, the count is exactly 7 days old

    assert not Alert.objects.exists()


def test_sweeping_ten_times_on_one_day_changes_nothing_after_the_first(
    patient, clock, center, clinician
):
    # Two more courses with alerts of other rules, which a sweep re-evaluates as well.
    regenerator = PatientFactory(center=center, study_id="CT-0302")
    regenerator.hematologists.add(clinician)
    InfusionFactory(patient=regenerator, infusion_date=date(2025, 2, 10))
    bcell_count(regenerator, date(2025, 2, 17), None, user=clinician)  # day 7
    bcell_count(regenerator, date(2025, 3, 12), Decimal("7.31"), user=clinician)  # day 30
    never_aplastic = PatientFactory(center=center, study_id="CT-0303")
    InfusionFactory(patient=never_aplastic, infusion_date=date(2025, 2, 1))
    bcell_count(never_aplastic, date(2025, 2, 8), Decimal("50"), user=clinician)  # day 7

    services.sweep(as_of=SWEEP_DAY)
    after_first = state()
    assert sorted(Alert.objects.filter(status=OPEN).values_list("rule", flat=True)) == [
        "aplasia_not_reached",
        "bcell_count_due",
        "early_regeneration",
    ]

    for _ in range(10):
        clock.shift(timedelta(minutes=5))  # a re-save would show in updated_at
        assert services.sweep(as_of=SWEEP_DAY) == {"patients": 3, "changed": 0}

    assert state() == after_first


def test_sweep_on_the_clock_of_the_day_is_idempotent_too(patient, clock):
    services.sweep()  # as_of defaults to today in the center's time zone
    after_first = state()
    assert [a[1] for a in after_first["alerts"]] == [OPEN]

    clock.shift(timedelta(hours=1))
    services.sweep()

    assert state() == after_first


def test_next_day_keeps_the_same_reminder_and_sends_no_second_email(patient, clock):
    services.sweep(as_of=SWEEP_DAY)
    reminder = Alert.objects.get(patient=patient)

    clock.shift(timedelta(days=1))
    services.sweep(as_of=SWEEP_DAY + timedelta(days=1))

    (kept,) = Alert.objects.filter(patient=patient)
    assert kept.pk == reminder.pk and kept.status == OPEN
    assert kept.details["days_since_last_count"] == 13  # the basis follows the calendar
    assert AlertEvent.objects.filter(alert=kept).count() == 1
    assert Notification.objects.count() == 1


def test_a_new_count_withdraws_the_reminder(patient, clinician):
    services.sweep(as_of=SWEEP_DAY)
    reminder = Alert.objects.get(patient=patient)

    bcell_count(patient, SWEEP_DAY, None, user=clinician)  # today's count, still aplastic

    reminder.refresh_from_db()
    assert reminder.status == WITHDRAWN
    assert reminder.withdrawn_reason
    assert not Alert.objects.filter(status=OPEN).exists()
    # And the next sweep does not bring it back while the count is fresh.
    services.sweep(as_of=SWEEP_DAY)
    reminder.refresh_from_db()
    assert reminder.status == WITHDRAWN


def test_sweep_ignores_windows_that_have_passed(patient):
    # Day 60: the early-regeneration window is over; counts are no longer due.
    services.sweep(as_of=INFUSED + timedelta(days=60))

    assert not Alert.objects.filter(rule="bcell_count_due").exists()
