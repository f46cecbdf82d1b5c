"""Clinical days (CLINICAL.md section 3): day 0 is the infusion date, in the center's time zone."""

from datetime import UTC, date, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from patients import units
from patients.days import ClinicalDay, clinical_day, local_date
from patients.selectors import patient_samples
from tests.factories import CenterFactory, InfusionFactory, LabResultFactory, PatientFactory

BERLIN = ZoneInfo("Europe/Berlin")
SHANGHAI = ZoneInfo("Asia/Shanghai")
INFUSED = date(2025, 3, 1)


def test_the_infusion_date_is_day_0():
    day = clinical_day(INFUSED, [INFUSED])
    assert day == ClinicalDay(infusion_number=1, day=0)
    assert not day.is_baseline
    assert str(day) == "day 0"


def test_a_result_two_weeks_after_infusion_is_day_14():
    assert clinical_day(date(2025, 3, 15), [INFUSED]) == ClinicalDay(1, 14)
    # Calendar days, across a month end
    assert clinical_day(date(2025, 4, 15), [INFUSED]).day == 45


def test_late_in_the_evening_utc_is_already_the_next_day_in_berlin():
    # 23:30 UTC on 14 March is 00:30 on 15 March in Berlin (CET, UTC+1).
    collected = datetime(2025, 3, 14, 23, 30, tzinfo=UTC)
    assert local_date(collected, BERLIN) == date(2025, 3, 15)
    assert clinical_day(local_date(collected, BERLIN), [INFUSED]).day == 14
    # The same moment read as a UTC date would wrongly be day 13.
    assert clinical_day(collected.date(), [INFUSED]).day == 13


def test_an_afternoon_in_utc_is_the_next_day_in_shanghai_but_not_in_berlin():
    collected = datetime(2025, 3, 14, 18, 0, tzinfo=UTC)  # 19:00 Berlin, 02:00 next day Shanghai
    assert clinical_day(local_date(collected, BERLIN), [INFUSED]).day == 13
    assert clinical_day(local_date(collected, SHANGHAI), [INFUSED]).day == 14


def test_after_a_second_infusion_days_count_from_it():
    second = date(2025, 4, 20)
    infusions = [INFUSED, second]
    assert clinical_day(date(2025, 4, 19), infusions) == ClinicalDay(1, 49)
    assert clinical_day(second, infusions) == ClinicalDay(2, 0)
    day = clinical_day(date(2025, 4, 27), infusions)
    assert day == ClinicalDay(2, 7)
    assert str(day) == "day 7 after infusion 2"


def test_a_baseline_result_before_the_first_infusion_has_a_negative_day():
    day = clinical_day(date(2025, 2, 24), [INFUSED, date(2025, 4, 20)])
    assert day.is_baseline
    assert day.infusion_number is None
    assert day.day == -5
    assert str(day) == "baseline (day -5)"


def test_without_an_infusion_there_is_no_clinical_day():
    assert clinical_day(date(2025, 3, 15), []) is None


@pytest.mark.parametrize(
    ("time_zone", "expected_day"),
    [("Europe/Berlin", 13), ("Asia/Shanghai", 14)],
)
def test_the_patient_page_counts_days_in_the_centers_time_zone(db, time_zone, expected_day):
    center = CenterFactory(code=time_zone.split("/")[1].lower(), time_zone=time_zone)
    patient = PatientFactory(center=center)
    InfusionFactory(patient=patient, infusion_date=INFUSED)
    LabResultFactory(
        patient=patient,
        collected_at=datetime(2025, 3, 14, 18, 0, tzinfo=UTC),
        value=Decimal(0),
        unit=units.CELLS_PER_UL,
    )
    _columns, (row,) = patient_samples(patient)
    assert row.day == ClinicalDay(1, expected_day)
    assert row.local_date == date(2025, 3, 1 + expected_day)


def test_the_patient_page_marks_results_before_the_first_infusion_as_baseline(db):
    patient = PatientFactory(center=CenterFactory(code="alpha"))
    InfusionFactory(patient=patient, infusion_date=INFUSED)
    InfusionFactory(patient=patient, infusion_date=date(2025, 4, 20), infusion_number=2)
    baseline_sample = datetime(2025, 2, 24, 8, tzinfo=BERLIN)
    after_second_infusion = datetime(2025, 4, 27, 8, tzinfo=BERLIN)
    for collected in (baseline_sample, after_second_infusion):
        LabResultFactory(patient=patient, collected_at=collected)
    _columns, (later, baseline) = patient_samples(patient)  # newest first
    assert baseline.day == ClinicalDay(None, -5)
    assert baseline.day.is_baseline
    assert later.day == ClinicalDay(2, 7)


def test_the_patient_page_shows_no_day_without_an_infusion(db):
    patient = PatientFactory(center=CenterFactory(code="alpha"))
    LabResultFactory(patient=patient)
    _columns, (row,) = patient_samples(patient)
    assert row.day is None
