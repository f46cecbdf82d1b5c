"""The one import path: a whole course checked first, written in bulk with its audit history,
and each patient's rules evaluated once at the end.

History is not news: a course two years old raises its alerts as historical, with no e-mail;
a transient finding (aplasia "not reached" between the infusion and its counts) is never
created; one wrong value saves nothing, and every problem is named by its place.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal

import pytest
import time_machine
from django.db import connection
from django.test.utils import CaptureQueriesContext

from imports.services import import_scope, records_import, records_preview
from monitoring.models import OPEN, Alert, AlertEvent, Notification
from patients.ingest.records import (
    Batch,
    EventRecord,
    InfusionRecord,
    LabValueRecord,
    PatientRecord,
    ResponseRecord,
    SampleRecord,
)
from patients.models import ClinicalEvent, Infusion, LabResult, Patient
from tests.factories import BERLIN, InfusionFactory, PatientFactory

NOW = datetime(2027, 6, 1, 10, tzinfo=UTC)
INFUSED = date(2025, 3, 3)  # two years and more before NOW


def course(study_id: str = "CT-2Y", *, infused: date = INFUSED, regeneration_day: int = 30):
    """A course as a spreadsheet would bring it: patient, infusion, weekly counts with aplasia
    from day 7 and B cells back on `regeneration_day`, CR on day 28."""
    counts = {7: None, 14: None, 21: None, regeneration_day: Decimal("15")}
    return Batch(
        patients=[
            PatientRecord(place="patients row 2", study_id=study_id, date_of_birth=date(1990, 1, 2))
        ],
        infusions=[
            InfusionRecord(
                place="infusions row 2",
                study_id=study_id,
                infusion_date=infused,
                product="tisa-cel",
            )
        ],
        samples=[
            SampleRecord(
                place=f"labs row {row}",
                study_id=study_id,
                collected_at=datetime.combine(infused + timedelta(days=day), time(8), BERLIN),
                values=[
                    LabValueRecord(
                        place=f"labs row {row}",
                        analyte="pb_bcell_abs",
                        value=value,
                        unit="cells/uL",
                        qualifier="" if value is not None else "undetectable",
                    )
                ],
            )
            for row, (day, value) in enumerate(sorted(counts.items()), start=2)
        ],
        responses=[
            ResponseRecord(
                place="responses row 2",
                study_id=study_id,
                assessed_on=infused + timedelta(days=28),
                response="CR",
                mrd_status="negative",
            )
        ],
    )


@pytest.fixture
def data_manager(clinician):
    return clinician


def test_a_two_year_old_course_raises_its_alert_as_history_and_e_mails_nobody(
    data_manager, django_capture_on_commit_callbacks, settings
):
    settings.ALERT_STALE_AFTER_DAYS = 60  # the default: older than this before arrival is history
    with time_machine.travel(NOW, tick=False), django_capture_on_commit_callbacks(execute=True):
        outcome = records_import(batch=course(), scope=import_scope(data_manager))
    assert outcome.ok, outcome.problems
    patient = Patient.objects.get(study_id="CT-2Y")
    patient.hematologists.add(data_manager)  # assigned or not: history is never e-mailed

    (alert,) = Alert.objects.filter(patient=patient)
    assert (alert.rule, alert.day, alert.status, alert.historical) == (
        "early_regeneration",
        30,
        OPEN,
        True,
    )
    assert not Notification.objects.exists()
    assert outcome.alerts == {"active": 1, "historical": 1, "news": 0}
    assert outcome.counts == {
        "patients": 1,
        "infusions": 1,
        "lab_results": 4,
        "samples": 4,
        "responses": 1,
        "events": 0,
        "therapies": 0,
    }


def test_no_transient_alert_is_ever_created_between_the_infusion_and_its_counts(data_manager):
    """Saved record by record, the infusion alone would raise "aplasia not reached" and the
    counts would withdraw it; the import evaluates once, after everything is written."""
    with time_machine.travel(NOW, tick=False):
        records_import(batch=course(), scope=import_scope(data_manager))
    assert not Alert.objects.filter(rule="aplasia_not_reached").exists()
    assert list(AlertEvent.objects.values_list("old_status", "new_status")) == [("", OPEN)]


def test_every_record_has_its_audit_row_naming_the_importer(data_manager):
    with time_machine.travel(NOW, tick=False):
        records_import(batch=course(), scope=import_scope(data_manager))
    for model in (Patient, Infusion, LabResult):
        history = model.history.all()
        assert history.count() == model.objects.count() > 0
        assert {h.history_user_id for h in history} == {data_manager.pk}
        assert {h.history_type for h in history} == {"+"}


def test_a_current_sample_through_the_import_notifies_as_today(
    data_manager, django_capture_on_commit_callbacks
):
    recent = (NOW - timedelta(days=40)).date()  # regeneration day 30 = 10 days ago... news at 7
    batch = course("CT-NOW", infused=recent, regeneration_day=37)  # counts to yesterday-ish
    with time_machine.travel(NOW, tick=False):
        patient = PatientFactory(center=data_manager.profile.center, study_id="CT-NOW")
        patient.hematologists.add(data_manager)
        batch.patients = []  # the patient exists; the import adds to it
        with django_capture_on_commit_callbacks(execute=False):
            outcome = records_import(batch=batch, scope=import_scope(data_manager))
    assert outcome.ok, outcome.problems
    alert = Alert.objects.get(patient=patient, rule="early_regeneration")
    assert alert.historical is False  # day 37 is 3 days before NOW
    assert list(Notification.objects.values_list("alert_id", "recipient_id")) == [
        (alert.pk, data_manager.pk)
    ]


def test_every_problem_is_reported_by_place_and_nothing_is_saved(data_manager):
    batch = course()
    batch.samples[1].values[0].unit = "% cells"  # not a unit of a B-cell count
    batch.samples[2].values[0].value, batch.samples[2].values[0].qualifier = Decimal(-1), ""
    batch.events.append(
        EventRecord(
            place="events row 2", study_id="CT-2Y", kind="relapse", event_date=date(2025, 1, 5)
        )
    )
    batch.samples.append(
        SampleRecord(
            place="labs row 9",
            study_id="NOBODY",
            collected_at=datetime(2025, 4, 1, 8, tzinfo=BERLIN),
            values=[LabValueRecord("labs row 9", "alc", Decimal(1), "10^9/L")],
        )
    )
    with time_machine.travel(NOW, tick=False):
        outcome = records_import(batch=batch, scope=import_scope(data_manager))
    errors = outcome.as_json()["errors"]
    assert sorted(errors) == [
        "events row 2.event_date",
        "infusions row 2.infusion_date",  # the model's rule, seen from the infusion's side
        "labs row 3.unit",
        "labs row 4.value",
        "labs row 9.study_id",
    ]
    assert "before the first infusion" in errors["events row 2.event_date"][0]
    assert errors["labs row 4.value"] == ["A value cannot be negative."]
    assert not Patient.objects.exists() and not LabResult.objects.exists()
    assert not ClinicalEvent.objects.exists() and not Alert.objects.exists()


def test_duplicates_within_the_batch_and_of_stored_results_are_refused(data_manager):
    with time_machine.travel(NOW, tick=False):
        assert records_import(batch=course(), scope=import_scope(data_manager)).ok
        again = course()
        again.patients = []
        again.infusions = []
        again.responses = []
        outcome = records_import(batch=again, scope=import_scope(data_manager))
    errors = outcome.as_json()["errors"]
    assert sorted(errors) == [f"labs row {row}.collected_at" for row in range(2, 6)]
    assert "already recorded" in errors["labs row 2.collected_at"][0]
    assert LabResult.objects.count() == 4


def test_another_centers_patient_cannot_be_written_to(data_manager, other_center):
    PatientFactory(center=other_center, study_id="CT-2Y")
    with time_machine.travel(NOW, tick=False):
        outcome = records_import(batch=course(), scope=import_scope(data_manager))
    errors = outcome.as_json()["errors"]
    assert "patients row 2.study_id" in errors
    assert "infusions row 2.study_id" in errors
    assert LabResult.objects.count() == 0


def test_checking_costs_the_same_queries_for_ten_or_two_hundred_samples(data_manager):
    """Facts are pre-loaded set-wise: no query per row."""
    patient = PatientFactory(center=data_manager.profile.center, study_id="CT-Q")
    InfusionFactory(patient=patient, infusion_date=INFUSED)

    def batch_of(n: int) -> Batch:
        return Batch(
            samples=[
                SampleRecord(
                    place=f"samples[{i}]",
                    study_id="CT-Q",
                    collected_at=datetime(2025, 3, 4, 8, tzinfo=BERLIN) + timedelta(hours=i),
                    values=[
                        LabValueRecord(
                            f"samples[{i}].values[0]",
                            "pb_bcell_abs",
                            None,
                            "cells/uL",
                            "undetectable",
                        ),
                        LabValueRecord(f"samples[{i}].values[1]", "alc", Decimal("0.5"), "10^9/L"),
                    ],
                )
                for i in range(n)
            ]
        )

    counts = []
    with time_machine.travel(NOW, tick=False):
        records_preview(batch=batch_of(1), scope=import_scope(data_manager))  # warm caches
        for n in (10, 200):
            with CaptureQueriesContext(connection) as queries:
                plan, problems = records_preview(
                    batch=batch_of(n), scope=import_scope(data_manager)
                )
            assert not problems and len(plan.labs) == 2 * n
            counts.append(len(queries))
    assert counts[0] == counts[1] <= 10  # + the center's limits (2), once per batch


def test_creating_patients_needs_the_right_to_add_them(data_manager):
    from django.contrib.auth.models import Permission

    data_manager.groups.first().permissions.remove(Permission.objects.get(codename="add_patient"))
    data_manager = type(data_manager).objects.get(pk=data_manager.pk)  # fresh permission cache
    with time_machine.travel(NOW, tick=False):
        outcome = records_import(batch=course(), scope=import_scope(data_manager))
    assert outcome.as_json()["errors"]["patients row 2.study_id"] == ["You may not add patients."]
    assert not Patient.objects.exists()
