"""Derived facts kept current on write (issue 22 item 1).

Each patient's analysis row is stored (`analytics.derived`) in the transaction that changes the
records: after every kind of change (a lab result added, corrected, deleted; a re-infusion; an
import; a history import; a rule-parameter publish; a patient deleted) the stored rows equal a
rebuild from the raw records (`derived_facts_verify` finds nothing). The check finds a row
changed by hand and `--fix` rewrites it; a snapshot read from the stored rows is the snapshot
computed from scratch, figure for figure.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from decimal import Decimal

import pytest
from django.core.management import call_command

from analytics import services
from analytics.dataset import analysis_frame
from analytics.derived import analysis_frame_stored, derived_facts_verify
from analytics.models import PatientDerived
from imports.services import import_scope, records_import
from monitoring.services import rule_parameters_publish
from patients.ingest.records import (
    Batch,
    InfusionRecord,
    LabValueRecord,
    PatientRecord,
    SampleRecord,
)
from patients.models import Center, LabResult, Patient
from patients.services import (
    LabValue,
    clinical_record_delete,
    clinical_record_save,
    lab_results_record,
    patient_save,
)
from patients.units import CELLS_PER_UL, PB_BCELL_ABS, UNDETECTABLE
from tests.analytics.test_snapshot import small_study
from tests.factories import (
    BERLIN,
    EventFactory,
    InfusionFactory,
    PatientFactory,
    ResponseFactory,
)

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("frozen_now")]

INFUSED = date(2025, 3, 1)


def _count(patient, value: str | None, day: int) -> list[LabResult]:
    """A PB B-cell count ``day`` days after the infusion, through the form service."""
    entry = LabValue(
        PB_BCELL_ABS,
        None if value is None else Decimal(value),
        CELLS_PER_UL,
        UNDETECTABLE if value is None else "",
    )
    return lab_results_record(
        patient=patient,
        collected_at=datetime.combine(INFUSED + timedelta(days=day), time(8), tzinfo=BERLIN),
        values=[entry],
        entered_by=None,
    )


def _stored(patient) -> dict | None:
    return PatientDerived.objects.get(patient=patient).row


def _current() -> None:
    """Every stored row equals its rebuild from the raw records, and every patient has one."""
    assert derived_facts_verify() == []
    assert PatientDerived.objects.count() == Patient.objects.count()


@pytest.fixture
def course(center):
    """A patient entered through the services: infusion, aplasia on day 7, CR on day 28."""
    patient = patient_save(patient=PatientFactory.build(center=center), user=None)
    clinical_record_save(
        instance=InfusionFactory.build(patient=patient, infusion_date=INFUSED), user=None
    )
    _count(patient, None, 7)
    clinical_record_save(
        instance=ResponseFactory.build(patient=patient, assessed_on=INFUSED + timedelta(days=28)),
        user=None,
    )
    clinical_record_save(
        instance=EventFactory.build(
            patient=patient, kind="last_followup", event_date=INFUSED + timedelta(days=200)
        ),
        user=None,
    )
    return patient


def test_a_patient_without_infusion_has_an_empty_row(center):
    patient = patient_save(patient=PatientFactory.build(center=center), user=None)
    assert _stored(patient) is None
    _current()


def test_each_write_through_the_services_keeps_the_row_current(course):
    row = _stored(course)
    assert (row["best_response"], row["regen_day"], row["last_followup_day"]) == ("CR", None, 200)
    _current()


def test_a_row_does_not_age(course, frozen_now):
    """Nothing in the row depends on the day it is built (follow-up ends at the last record or
    death, never at "today"): a year later the stored row still equals its rebuild."""
    frozen_now.shift(timedelta(days=365))
    _current()


def test_a_lab_result_added_corrected_and_deleted(course):
    (added,) = _count(course, "12", 30)
    assert _stored(course)["regen_day"] == 30
    _current()

    added.value = Decimal("0")  # corrected: not detectable after all
    clinical_record_save(instance=added, user=None)
    assert _stored(course)["regen_day"] is None
    _current()

    (later,) = _count(course, "9", 40)
    assert _stored(course)["regen_day"] == 40
    clinical_record_delete(instance=later, user=None)
    assert _stored(course)["regen_day"] is None
    _current()


def test_a_re_infusion(course):
    _count(course, "12", 30)
    clinical_record_save(
        instance=InfusionFactory.build(
            patient=course, infusion_number=2, infusion_date=INFUSED + timedelta(days=60)
        ),
        user=None,
    )
    _count(course, None, 67)
    _current()


def test_a_patient_deleted_takes_its_row(course, center):
    other = patient_save(patient=PatientFactory.build(center=center), user=None)
    course.delete()
    assert list(PatientDerived.objects.values_list("patient_id", flat=True)) == [other.pk]
    _current()


def _batch(study_id: str, *, counts: dict[int, Decimal | None], infused: date = INFUSED) -> Batch:
    return Batch(
        patients=[PatientRecord(place="patients row 2", study_id=study_id)]
        if study_id.startswith("NEW")
        else [],
        infusions=[
            InfusionRecord(
                place="infusions row 2",
                study_id=study_id,
                infusion_date=infused,
                product="tisa-cel",
            )
        ]
        if study_id.startswith("NEW")
        else [],
        samples=[
            SampleRecord(
                place=f"labs row {row}",
                study_id=study_id,
                collected_at=datetime.combine(infused + timedelta(days=day), time(8), BERLIN),
                values=[
                    LabValueRecord(
                        place=f"labs row {row}",
                        analyte=PB_BCELL_ABS,
                        value=value,
                        unit="cells/uL",
                        qualifier="" if value is not None else UNDETECTABLE,
                    )
                ],
            )
            for row, (day, value) in enumerate(sorted(counts.items()), start=2)
        ],
    )


@pytest.mark.parametrize("history", [False, True], ids=["import", "history import"])
def test_an_import_batch(course, clinician, history):
    """A new patient and counts for an existing one, through the one import path."""
    outcome = records_import(
        batch=_batch("NEW-1", counts={7: None, 21: Decimal("4")}),
        scope=import_scope(clinician),
        history=history,
    )
    assert outcome.ok, outcome.problems
    outcome = records_import(
        batch=_batch(course.study_id, counts={35: Decimal("6")}),
        scope=import_scope(clinician),
        history=history,
    )
    assert outcome.ok, outcome.problems
    assert _stored(Patient.objects.get(study_id="NEW-1"))["regen_day"] == 21
    assert _stored(course)["regen_day"] == 35
    _current()


def test_an_import_leaves_the_alerts_to_the_import(course, clinician):
    """The import announces its patients with alerts_evaluated: monitoring does not evaluate
    them a second time (its own evaluation, with the sender's choices, is the one)."""
    from patients.signals import records_changed

    heard = []

    def receiver(sender, *, patient_ids, alerts_evaluated=False, **kwargs):
        heard.append((list(patient_ids), alerts_evaluated))

    records_changed.connect(receiver, dispatch_uid="test-derived-heard")
    try:
        records_import(
            batch=_batch(course.study_id, counts={35: Decimal("6")}),
            scope=import_scope(clinician),
        )
    finally:
        records_changed.disconnect(dispatch_uid="test-derived-heard")
    assert heard == [([course.pk], True)]


def test_a_rule_parameter_publish_rebuilds_the_centers_rows(course):
    _count(course, "0.5", 30)
    assert _stored(course)["center_regen_day"] == 30
    rule_parameters_publish(
        center=course.center, user=None, values={"bcell_threshold": Decimal("1")}
    )
    assert _stored(course)["center_regen_day"] is None  # 0.5 cells/µL: not detectable now
    assert _stored(course)["regen_day"] == 30  # the study's definition does not move
    _current()
    rule_parameters_publish(center=None, user=None, values={"bcell_threshold": Decimal("0.2")})
    _current()  # the center's own version still rules: rebuilt, the same


def test_a_centers_time_zone_corrected_rebuilds_its_rows(course):
    """The days of the counts are calendar days in the center's zone: a correction saved (as
    the admin saves it) rebuilds the rows whose inputs it changed, in its transaction."""
    _count(course, "12", 30)
    center = course.center
    center.time_zone = "America/Los_Angeles"  # 08:00 in Berlin: the evening before there
    center.save()
    assert _stored(course)["regen_day"] == 29
    _current()
    center.name = "Center Alpha (renamed)"  # nothing the rows read: none rebuilt
    stamps = dict(PatientDerived.objects.values_list("patient_id", "updated_at"))
    center.save()
    assert dict(PatientDerived.objects.values_list("patient_id", "updated_at")) == stamps


def test_a_center_setting_changed_without_a_write_makes_the_row_stale(course):
    """A center renamed in the table: the rows' fingerprint no longer matches; the check says
    so, and a snapshot rebuilds (and stores) them rather than read the old code."""
    Center.objects.filter(pk=course.center_id).update(code="gamma")
    (difference,) = derived_facts_verify()
    assert (difference.column, difference.stored, difference.rebuilt) == (
        "center",
        "alpha",
        "gamma",
    )
    snapshot = services.snapshot_compute()
    assert "gamma" in snapshot.table_csv and "alpha" not in snapshot.table_csv
    _current()


def test_the_check_finds_a_row_changed_by_hand_and_fix_rewrites_it(course, capsys):
    PatientDerived.objects.filter(patient=course).update(
        row={**_stored(course), "best_response": "PD"}
    )
    with pytest.raises(SystemExit) as exit_:
        call_command("derived_facts_verify")
    assert exit_.value.code == 1
    out = capsys.readouterr()
    assert f"{course.study_id}\tbest_response\t'PD'\t'CR'" in out.out
    assert "1 difference(s) in 1 patient(s)" in out.err
    assert _stored(course)["best_response"] == "PD"  # reported, not fixed

    with pytest.raises(SystemExit):
        call_command("derived_facts_verify", "--fix")
    assert _stored(course)["best_response"] == "CR"
    call_command("derived_facts_verify")  # no difference left: no exit status
    assert "Every stored analysis row equals" in capsys.readouterr().out


def test_a_missing_row_is_a_difference(course):
    PatientDerived.objects.filter(patient=course).delete()
    (difference,) = derived_facts_verify()
    assert (difference.study_id, difference.column) == (course.study_id, "(row)")
    derived_facts_verify(fix=True)
    _current()


def _figures(snapshot) -> tuple:
    return (
        snapshot.n_patients,
        snapshot.report,
        snapshot.figures,
        snapshot.figures_suppressed,
        snapshot.table_csv,
        snapshot.excluded,
    )


@pytest.mark.parametrize("options", [{}, {"center": "alpha"}], ids=["registry", "one center"])
def test_a_snapshot_from_the_stored_rows_equals_one_from_scratch(options):
    small_study()  # written straight into the tables: no row stored yet
    assert not PatientDerived.objects.exists()
    from_scratch = services.snapshot_compute(options=options)  # rebuilt, and stored
    cohort = Patient.objects.filter(center__code=options["center"]) if options else Patient.objects
    stored = set(PatientDerived.objects.values_list("patient_id", flat=True))
    assert stored == set(cohort.values_list("pk", flat=True)) != set()
    # The rows stored are their rebuilds; only the other center's are missing (not stored).
    assert {d.column for d in derived_facts_verify()} <= {"(row)"}
    stamps = dict(PatientDerived.objects.values_list("patient_id", "updated_at"))
    from_stored = services.snapshot_compute(options=options)
    assert dict(PatientDerived.objects.values_list("patient_id", "updated_at")) == stamps
    assert _figures(from_stored) == _figures(from_scratch)
    assert analysis_frame_stored().equals(analysis_frame())
