"""What is news, and what is history (CLINICAL.md section 4; `monitoring.news`).

A finding is news unless it arrived in an import declared as history, or the course had already
answered it when it arrived (monitoring ended, pre-emptive therapy started on or after its day, a
newer infusion, or its day more than [60] days before its arrival). Age alone never makes it
history: a day-45 count arriving 8 days late is news and says so. Each result here is entered on
a fixed clock, the day it arrives (time-machine), so its arrival is known exactly.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from decimal import Decimal

import pytest
import time_machine

from imports.services import import_scope, records_import
from monitoring import notifications, sweep
from monitoring.models import HIGH, Alert, Notification
from monitoring.news import DECLARED
from monitoring.selectors import alert_inbox
from patients.services import LabValue, lab_results_record
from patients.units import CELLS_PER_UL, PB_BCELL_ABS, UNDETECTABLE
from tests.factories import (
    BERLIN,
    EventFactory,
    InfusionFactory,
    PatientFactory,
    TherapyFactory,
)
from tests.imports.test_import_path import course

INFUSED = date(2025, 3, 1)


@pytest.fixture(autouse=True)
def sixty_days(settings):
    settings.ALERT_STALE_AFTER_DAYS = 60  # the default (the suite's conftest lifts it)


def on_day(day: int, hour: int = 8) -> datetime:
    return datetime.combine(INFUSED + timedelta(days=day), time(hour), tzinfo=BERLIN)


def count(patient, day: int, value, *, arrives: int | None = None) -> None:
    """A PB B-cell count collected on `day`, entered (arriving) on day `arrives`."""
    with time_machine.travel(on_day(arrives if arrives is not None else day, 14), tick=False):
        lab_results_record(
            patient=patient,
            collected_at=on_day(day),
            values=[
                LabValue(
                    PB_BCELL_ABS, value, CELLS_PER_UL, "" if value is not None else UNDETECTABLE
                )
            ],
            entered_by=None,
        )


@pytest.fixture
def patient(center, clinician):
    """Infused on 1 March 2025, B-cell aplasia on day 7 (entered that day)."""
    patient = PatientFactory(center=center, study_id="CT-NEWS1")
    patient.hematologists.add(clinician)
    InfusionFactory(patient=patient, infusion_date=INFUSED)
    count(patient, 7, None)
    return patient


def early(patient) -> Alert:
    return Alert.objects.get(patient=patient, rule="early_regeneration")


def test_a_day_45_count_arriving_8_days_late_is_news_and_says_how_late(
    patient, clinician, mailoutbox, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False):
        count(patient, 45, Decimal("12.75"), arrives=53)

    alert = early(patient)
    assert (alert.severity, alert.historical, alert.late_days) == (HIGH, False, 8)
    assert alert.lateness == "collected 8 days before it arrived"
    assert alert.arrived_at.date() == (INFUSED + timedelta(days=53))
    assert alert in list(alert_inbox(clinician))
    (note,) = Notification.objects.filter(alert=alert)
    assert note.recipient == clinician
    notifications.notification_send(note.pk)
    (mail,) = mailoutbox
    assert "The result was collected 8 days before it arrived." in mail.body
    assert "12.75" not in mail.body and "12,75" not in mail.body  # never a lab value


def test_a_count_arriving_the_day_it_was_collected_says_nothing_about_lateness(patient):
    count(patient, 30, Decimal("12"))
    alert = early(patient)
    assert (alert.historical, alert.late_days, alert.lateness) == (False, 0, "")


@pytest.mark.parametrize(("late", "history"), [(60, False), (61, True)])
def test_a_finding_more_than_60_days_before_its_arrival_is_history(
    patient, late, history, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False):
        count(patient, 30, Decimal("12"), arrives=30 + late)

    alert = early(patient)
    assert (alert.historical, alert.late_days) == (history, late)
    assert Notification.objects.filter(alert=alert).exists() is not history
    if history:
        assert "61 days before it arrived" in alert.history_reason


def test_the_staleness_limit_is_a_per_center_setting(patient, center):
    from monitoring.models import CenterAlerting

    CenterAlerting.objects.create(center=center, stale_after_days=90)
    count(patient, 30, Decimal("12"), arrives=100)  # 70 days late: news under 90
    assert early(patient).historical is False


def test_a_pre_emptive_therapy_started_after_the_finding_answered_it(patient):
    TherapyFactory(patient=patient, start_date=INFUSED + timedelta(days=47))
    count(patient, 45, Decimal("12"), arrives=53)

    alert = early(patient)
    assert alert.historical is True
    assert "pre-emptive therapy started on 2025-04-17" in alert.history_reason
    assert not Notification.objects.filter(alert=alert).exists()


def test_a_therapy_started_before_the_finding_does_not_answer_it(patient):
    TherapyFactory(patient=patient, start_date=INFUSED + timedelta(days=20))
    count(patient, 45, Decimal("12"), arrives=53)
    assert early(patient).historical is False


def test_a_newer_infusion_answered_it(patient):
    InfusionFactory(patient=patient, infusion_date=INFUSED + timedelta(days=50), infusion_number=2)
    count(patient, 45, Decimal("12"), arrives=53)

    alert = early(patient)
    assert alert.historical is True and "newer infusion on 2025-04-20" in alert.history_reason


def test_a_relapse_recorded_before_it_arrived_ended_the_window(patient):
    EventFactory(patient=patient, kind="relapse", event_date=INFUSED + timedelta(days=50))
    count(patient, 45, Decimal("12"), arrives=53)

    alert = early(patient)
    assert alert.historical is True and "monitoring ended (relapse" in alert.history_reason


IMPORTED_AT = datetime(2025, 4, 10, 10, tzinfo=BERLIN)  # 8 days after the course's day 30


@pytest.mark.parametrize("declared", [True, False])
def test_an_import_declared_as_history_is_history_and_the_next_sweep_emails_nobody(
    clinician, declared, django_capture_on_commit_callbacks
):
    """A registry's past, loaded in bulk: recent enough to be news by its dates alone, history
    because its sender said so; the sweep after it queues no e-mail either."""
    with time_machine.travel(IMPORTED_AT, tick=False):
        with django_capture_on_commit_callbacks(execute=False):
            outcome = records_import(
                batch=course("CT-PAST", infused=date(2025, 3, 3)),
                scope=import_scope(clinician),
                history=declared,
            )
            assert outcome.ok, outcome.problems
            sweep.sweep_all()

    alert = Alert.objects.get(patient__study_id="CT-PAST", rule="early_regeneration")
    assert alert.historical is declared
    assert alert.history_reason == (DECLARED if declared else "")
    assert outcome.alerts["historical"] == (1 if declared else 0)
    assert Notification.objects.filter(alert__patient__study_id="CT-PAST").exists() is not declared
