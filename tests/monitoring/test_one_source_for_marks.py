"""One source for aplasia and regeneration (issue 18 item 5, issue 16 item 3).

The course chart's marks, the alert, the worklist's last count and count due, the analysis
dataset and the calibration's course table all come from `monitoring.rules.recovery`, with the
center's parameters in force. A center with a 30-day window and confirmation on, and a count
given as % of lymphocytes × ALC, is where the chart used to contradict the alert.
"""

from __future__ import annotations

import io
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from analytics.calibration import regeneration_known_day
from analytics.course_tables import (
    COURSE_LAST_DAY,
    bcell_course_frame,
    course_rows,
    read_bcell_csv,
    table_csv,
)
from analytics.dataset import analysis_frame
from monitoring.course_data import course_for
from monitoring.engine import EARLY_MARK, LATE_MARK, evaluate, recovery_marks
from monitoring.params import RuleParams
from monitoring.rules.recovery import find_regeneration, first_aplasia
from monitoring.selectors import patient_timeline, rule_params_for
from monitoring.services import alerts_sync, rule_parameters_publish
from monitoring.texts import EARLY_REGENERATION, LATE_RECOVERY
from monitoring.timeline_json import parse_json, timeline_from_json
from monitoring.worklist import worklist
from patients import units
from tests.factories import BERLIN, InfusionFactory, LabResultFactory, PatientFactory

INFUSED = date(2025, 3, 1)
CASES = sorted((Path(__file__).parent / "reference_timelines").glob("*.json"))


def at(day: int, hour: int = 9) -> datetime:
    return datetime(2025, 3, 1, hour, 0, tzinfo=BERLIN) + timedelta(days=day)


def bcells(patient, day: int, *, absolute=None, pct=None, alc_giga=None):
    """One PB sample: an absolute count (cells/µL or None = undetectable), or a % with an ALC."""
    if pct is None:
        LabResultFactory(
            patient=patient, collected_at=at(day), value=absolute,
            qualifier="" if absolute is not None else units.UNDETECTABLE,
        )  # fmt: skip
        return
    LabResultFactory(
        patient=patient, collected_at=at(day), analyte=units.PB_BCELL_PCT, value=Decimal(pct),
        unit=units.PERCENT_LYMPHOCYTES, canonical_unit=units.PERCENT_LYMPHOCYTES,
    )  # fmt: skip
    LabResultFactory(
        patient=patient, collected_at=at(day), analyte=units.ALC, value=Decimal(alc_giga),
        unit=units.GIGA_PER_L,
    )  # fmt: skip


@pytest.fixture
def thirty_day_center(center, clinician):
    rule_parameters_publish(
        center=center, user=clinician, note="30-day window, confirmed",
        values={"window_days": 30, "require_confirmation": True},
    )  # fmt: skip
    return center


@pytest.mark.django_db
def test_chart_alert_worklist_dataset_and_calibration_agree(thirty_day_center, clinician):
    params = rule_params_for(thirty_day_center)
    assert (params.window_days, params.require_confirmation) == (30, True)
    patient = PatientFactory(center=thirty_day_center, study_id="CT-AGREE")
    InfusionFactory(patient=patient, infusion_date=INFUSED)
    bcells(patient, 7, absolute=None)  # aplasia reached
    bcells(patient, 14, pct="0", alc_giga="0.6")  # still aplastic, read from % × ALC
    bcells(patient, 21, pct="2", alc_giga="0.5")  # 10 cells/µL from % × ALC: the onset
    bcells(patient, 24, absolute=Decimal(12))  # the confirming count
    now = at(29, 12)  # day 29 of a 30-day window
    alerts_sync(patient=patient, as_of=now.date())

    alert = patient.alerts.get(rule=EARLY_REGENERATION)
    facts = alert.details
    assert alert.day == 24  # raised by the confirming sample
    assert (facts["regeneration_day"], facts["first_aplasia_day"]) == (21, 7)

    # The chart: marks by the rules, the 30-day window shaded, the % × ALC sample drawn.
    course = course_for(patient, now=now)
    marks = {(m.kind, m.day) for m in course.marks}
    assert marks == {("aplasia", 7), (EARLY_MARK, 21)}
    assert course.window_days == 30
    assert [m.label for m in course.marks if m.kind == EARLY_MARK] == [
        "early regeneration (day 21)"
    ]

    # The worklist: the last count is the rule's (the day-24 count), and no count is due,
    # because the count-due rule stops once a regeneration is found.
    clinician.refresh_from_db()
    row = next(r for r in worklist(clinician, now=now).in_window if r.patient.pk == patient.pk)
    assert (row.day, row.days_since_count, row.count_due) == (29, 5, False)
    assert row.last_count.collected_at == at(24) and row.last_count_detectable
    assert not [f for f in evaluate(patient_timeline(patient), params, as_of=now.date())
                if f.rule == "bcell_count_due"]  # fmt: skip

    # The dataset (study definition: > 0 cells/µL, as the data dictionary says) finds the same
    # regeneration day through the same function.
    row = analysis_frame().set_index("study_id").loc["CT-AGREE"]
    assert (row["regen_day"], row["early_regen"]) == (21, 1)
    # Its center columns follow this center's alert definition: the alert's day and rule.
    assert (row["center_regen_day"], row["center_early_regen"]) == (
        facts["regeneration_day"],
        1 if alert.rule == EARLY_REGENERATION else 0,
    )

    # The calibration's CSV reader, on the exported course table, knows it on the alert's day.
    exported = read_bcell_csv(io.StringIO(table_csv(bcell_course_frame())))
    rows = [
        (int(r.day), float("nan") if r.count_cells_per_ul != r.count_cells_per_ul
         else float(r.count_cells_per_ul), int(r.bcells_seen))
        for r in exported.itertuples() if r.study_id == "CT-AGREE"
    ]  # fmt: skip
    assert regeneration_known_day(rows, threshold=0, confirmation=True) == (True, alert.day)


@pytest.mark.django_db
def test_the_center_columns_follow_the_alert_where_the_study_columns_do_not(
    thirty_day_center, clinician
):
    patient = PatientFactory(center=thirty_day_center, study_id="CT-LATE")
    InfusionFactory(patient=patient, infusion_date=INFUSED)
    bcells(patient, 7, absolute=None)  # aplasia reached
    bcells(patient, 35, pct="2", alc_giga="0.5")  # 10 cells/µL: day 35, past this 30-day window
    bcells(patient, 38, absolute=Decimal(12))  # the confirming count
    alerts_sync(patient=patient, as_of=at(40).date())

    alert = patient.alerts.get(rule__in=[EARLY_REGENERATION, LATE_RECOVERY])
    assert (alert.rule, alert.details["regeneration_day"]) == (LATE_RECOVERY, 35)
    row = analysis_frame().set_index("study_id").loc["CT-LATE"]
    assert (row["center_regen_day"], row["center_early_regen"]) == (35, 0)
    assert (row["regen_day"], row["early_regen"], row["late_regen"]) == (35, 1, 0)  # the study


@pytest.mark.django_db
def test_count_due_on_the_worklist_is_the_rules_at_its_boundary(thirty_day_center, clinician):
    patient = PatientFactory(center=thirty_day_center, study_id="CT-DUE")
    InfusionFactory(patient=patient, infusion_date=INFUSED)
    bcells(patient, 7, pct="0", alc_giga="0.8")  # the last count, a % of lymphocytes
    params = rule_params_for(thirty_day_center)
    for day, due in [(14, False), (15, True), (30, True), (31, None)]:
        now = at(day, 12)
        rows = [r for r in worklist(clinician, now=now).in_window if r.patient.pk == patient.pk]
        rule_due = any(
            f.rule == "bcell_count_due"
            for f in evaluate(patient_timeline(patient), params, as_of=now.date())
        )
        if due is None:  # day 31: past this center's window, not listed, nothing due
            assert rows == [] and not rule_due
            continue
        assert rows[0].count_due is due and rule_due is due, day
        assert rows[0].days_since_count == day - 7
        assert rows[0].last_count_text == "0 (% × ALC)"


def _reference_checks():
    for path in CASES:
        case = parse_json(path.read_text(encoding="utf-8"))
        timeline = timeline_from_json(case["timeline"])
        for check in case["checks"]:
            as_of = date.fromisoformat(check["as_of"]) if check["as_of"] else None
            params = RuleParams.from_dict(check["params"]) if "params" in check else RuleParams()
            yield path.stem, timeline, params, as_of


def test_an_early_mark_exists_exactly_when_the_alert_does_on_every_reference_timeline():
    seen = 0
    for name, timeline, params, as_of in _reference_checks():
        for rule, kind in ((EARLY_REGENERATION, EARLY_MARK), (LATE_RECOVERY, LATE_MARK)):
            findings = {
                f.infusion_id: f for f in evaluate(timeline, params, as_of=as_of) if f.rule == rule
            }
            marks = {
                m.infusion_id: m for m in recovery_marks(timeline, params, as_of=as_of)
                if m.kind == kind
            }  # fmt: skip
            assert set(marks) == set(findings), name
            for infusion_id, mark in marks.items():
                assert mark.day == findings[infusion_id].details["regeneration_day"]
                seen += 1
    assert seen >= 3  # the reference timelines do contain regenerations


def test_the_calibration_reader_agrees_with_the_rule_on_every_reference_timeline():
    compared = 0
    for name, timeline, _params, _as_of in _reference_checks():
        for window in timeline.windows()[:1]:
            rows = course_rows(window)
            for threshold in (0, 1, 5, 10, 20):
                for confirmation in (False, True):
                    params = RuleParams(
                        version="grid", bcell_threshold=threshold,
                        require_confirmation=confirmation,
                    )  # fmt: skip
                    # The course table stops at day COURSE_LAST_DAY: what the rule knew by then.
                    aplasia = first_aplasia(window, params)
                    regeneration = find_regeneration(window, params)
                    known = None if regeneration is None else regeneration.alert_sample.day
                    expected = (
                        aplasia is not None and aplasia.day <= COURSE_LAST_DAY,
                        known if known is not None and known <= COURSE_LAST_DAY else None,
                    )
                    got = regeneration_known_day(
                        [(d, float("nan") if c is None else c, s) for _, d, c, s in rows],
                        threshold=threshold,
                        confirmation=confirmation,
                    )
                    assert got == expected, (name, threshold, confirmation)
                    compared += 1
    assert compared >= 80


@pytest.mark.django_db
def test_on_the_demo_cohort_the_chart_marks_early_regeneration_exactly_where_the_alerts_do():
    from demo.cohort import REFERENCE_TODAY
    from demo.load import demo_cohort_load
    from monitoring.models import WITHDRAWN
    from patients.models import Patient

    demo_cohort_load(today=REFERENCE_TODAY)
    with_mark, with_alert = set(), set()
    for patient in Patient.objects.select_related("center").order_by("study_id"):
        course = course_for(patient)
        with_mark |= {(patient.study_id, m.infusion_number, m.day) for m in course.marks
                      if m.kind == EARLY_MARK}  # fmt: skip
        with_alert |= {
            (patient.study_id, a.infusion_number, a.details["regeneration_day"])
            for a in patient.alerts.filter(rule=EARLY_REGENERATION).exclude(status=WITHDRAWN)
        }
    assert with_mark == with_alert
    assert len(with_alert) >= 5  # the demo has early regenerators


@pytest.mark.django_db
def test_one_resolver_gives_the_settings_in_force_at_a_time_for_many_centers_at_once(
    center, other_center, clinician, django_assert_num_queries
):
    import time_machine

    from monitoring.models import RuleParameterSet
    from monitoring.selectors import params_in_force_for_centers
    from patients.limits import PlausibilityLimits
    from patients.plausibility import Limits
    from patients.plausibility_checks import plausibility_limits_for
    from patients.services import plausibility_limits_publish
    from patients.versioned import settings_in_force

    first, second = datetime(2025, 1, 1, 9, tzinfo=BERLIN), datetime(2025, 6, 1, 9, tzinfo=BERLIN)
    with time_machine.travel(first, tick=False):
        rule_parameters_publish(center=None, user=clinician, values={"window_days": 60})
        plausibility_limits_publish(center=center, user=clinician, values={"alc_soft": 40000})
    with time_machine.travel(second, tick=False):
        rule_parameters_publish(center=center, user=clinician, values={"window_days": 30})
    before = second - timedelta(seconds=1)

    with django_assert_num_queries(1):  # any number of centers, one query
        now = params_in_force_for_centers([center.pk, other_center.pk])
    assert (now[center.pk].window_days, now[other_center.pk].window_days) == (30, 60)
    assert now[center.pk].version == "alpha-v1" and now[None].version == "registry-v1"
    then = params_in_force_for_centers([center.pk, other_center.pk], at=before)
    assert (then[center.pk].window_days, then[other_center.pk].window_days) == (60, 60)
    assert (
        params_in_force_for_centers([center.pk], at=first - timedelta(seconds=1))[center.pk]
        == RuleParams()
    )  # nothing published yet: the defaults
    assert rule_params_for(center, at=second).window_days == 30  # published at that instant

    # The plausibility limits through the same base and resolver; no registry set: defaults.
    assert plausibility_limits_for(center).alc_soft == 40000
    assert plausibility_limits_for(other_center) == Limits()
    assert plausibility_limits_for(center, at=first - timedelta(seconds=1)) == Limits()
    assert settings_in_force(PlausibilityLimits, [center.pk])[center.pk].version == "alpha-v1"
    assert RuleParameterSet.objects.filter(center=center, is_current=True).count() == 1
