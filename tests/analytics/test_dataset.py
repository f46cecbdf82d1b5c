"""The analysis dataset built from the database (``analytics.dataset.analysis_frame``).

Each test builds a few patients with the factories, on fixed dates, and checks the columns of the
data dictionary that the case is about. Day 0 is the first infusion; a lab's day is its
collection date in the center's time zone. The statistics on this table are tested elsewhere
(test_survival_*); here we test only that the table says what the data dictionary promises.

``infused_patient`` is the cohort builder the other dashboard tests reuse.
"""

from __future__ import annotations

import io
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal

import pandas as pd
import pytest

from analytics.dataset import CohortFilter, analysis_csv, analysis_frame
from analytics.dataset_schema import COLUMN_NAMES, read_analysis_csv, validate_analysis_frame
from patients import units
from patients.models import Patient
from tests.factories import (
    CenterFactory,
    EventFactory,
    InfusionFactory,
    LabResultFactory,
    PatientFactory,
    ResponseFactory,
    TherapyFactory,
)

INFUSED = date(2025, 1, 6)  # day 0; day 300 is 2025-11-02, the day before the fixed "now"


def on(day: int, start: date = INFUSED) -> date:
    return start + timedelta(days=day)


def sampled(day: int, center, start: date = INFUSED) -> datetime:
    """A morning blood draw on ``day``, in the center's own time zone."""
    return datetime.combine(on(day, start), time(8, 30), tzinfo=center.tzinfo)


def _lab(patient, analyte: str, day: int, value, unit: str, start: date):
    """value None = undetectable (stored as a qualifier, never as a made-up number)."""
    LabResultFactory(
        patient=patient,
        analyte=analyte,
        specimen=units.ANALYTES[analyte].specimen,
        collected_at=sampled(day, patient.center, start),
        value=None if value is None else Decimal(str(value)),
        qualifier=units.UNDETECTABLE if value is None else "",
        unit=unit,
        canonical_unit=units.ANALYTES[analyte].canonical_unit,
    )


def infused_patient(
    *,
    center=None,
    infused: date = INFUSED,
    product: str = "CD19 CAR-T",
    responses: tuple[tuple[int, str], ...] = ((28, "CR"),),
    relapse: int | None = None,
    death: int | None = None,
    hsct: int | None = None,
    followup: int | None = None,
    bcells: dict[int, float | None] | None = None,
    mrd: dict[int, float | None] | None = None,
    car: dict[int, float | None] | None = None,
    therapy: tuple[int, str] | None = None,
    **patient_fields,
) -> Patient:
    """One infused patient; days count from ``infused``; None in a lab dict = undetectable."""
    center = center or CenterFactory(code="alpha", name="Center Alpha")
    patient = PatientFactory(center=center, **patient_fields)
    InfusionFactory(patient=patient, infusion_date=infused, product=product)
    for day, response in responses:
        ResponseFactory(patient=patient, assessed_on=on(day, infused), response=response)
    for kind, day in (("hsct", hsct), ("relapse", relapse), ("death", death)):
        if day is not None:
            EventFactory(patient=patient, kind=kind, event_date=on(day, infused))
    if followup is not None:
        EventFactory(patient=patient, kind="last_followup", event_date=on(followup, infused))
    for day, value in (bcells or {}).items():
        _lab(patient, units.PB_BCELL_ABS, day, value, units.CELLS_PER_UL, infused)
    for day, value in (mrd or {}).items():
        _lab(patient, units.BM_MRD_FLOW, day, value, units.PERCENT_CELLS, infused)
    for day, value in (car or {}).items():
        _lab(patient, units.BM_CAR_COPIES, day, value, units.COPIES_PER_UG, infused)
    if therapy is not None:
        day, category = therapy
        agent = "chemotherapy" if category == "anti_leukemic" else "interferon"
        TherapyFactory(patient=patient, start_date=on(day, infused), category=category, agent=agent)
    return patient


def row_of(patient: Patient, cohort: CohortFilter | None = None) -> pd.Series:
    frame = analysis_frame(cohort)
    rows = frame.loc[frame["study_id"] == patient.study_id]
    assert len(rows) == 1, f"{patient.study_id} has {len(rows)} rows"
    return rows.iloc[0]


def blank(value) -> bool:
    return value is None or pd.isna(value)


pytestmark = pytest.mark.django_db


# --- who is in the table, and its shape -----------------------------------------------------


def test_frame_has_exactly_the_data_dictionary_columns_in_order():
    infused_patient(followup=100)
    assert list(analysis_frame().columns) == list(COLUMN_NAMES)


def test_patient_without_infusion_is_absent():
    infused_patient(study_id="CT-INFUSED", followup=100)
    never_infused = PatientFactory(study_id="CT-WAITING")
    ResponseFactory(patient=never_infused)
    EventFactory(patient=never_infused)
    assert analysis_frame()["study_id"].tolist() == ["CT-INFUSED"]


def test_identity_columns_come_from_the_first_infusion():
    patient = infused_patient(
        product="tisagenlecleucel",
        followup=200,
        sex="M",
        date_of_birth=date(1990, 5, 17),
        is_synthetic=True,
    )
    InfusionFactory(
        patient=patient, infusion_date=on(120), infusion_number=2, product="second product"
    )
    row = row_of(patient)
    assert row["center"] == "alpha"
    assert row["product"] == "tisagenlecleucel"
    assert row["first_infusion_date"] == "2025-01-06"
    assert row["age_at_infusion"] == 34
    assert row["sex"] == "M"
    assert row["synthetic"] == 1


def test_unknown_sex_is_blank_not_a_third_code():
    assert blank(row_of(infused_patient(followup=50, sex="U"))["sex"])


# --- response ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("responses", "best", "cr", "cr_day"),
    [
        (((28, "CR"),), "CR", 1, 28),
        (((28, "CRi"), (90, "CR")), "CR", 1, 28),  # first CR/CRi dates remission
        (((28, "PR"), (60, "CRi")), "CRi", 1, 60),
        (((28, "NR"), (56, "PR")), "PR", 0, None),
        (((28, "PD"),), "PD", 0, None),
        ((), "NE", 0, None),  # never assessed: not evaluable, not a failure
    ],
)
def test_best_response_and_cr(responses, best, cr, cr_day):
    row = row_of(infused_patient(responses=responses, followup=150))
    assert row["best_response"] == best
    assert row["cr"] == cr
    assert (blank(row["cr_day"]) and cr_day is None) or row["cr_day"] == cr_day


def test_response_before_the_infusion_does_not_count():
    patient = infused_patient(responses=((28, "NR"),), followup=150)
    ResponseFactory(patient=patient, assessed_on=on(-20), response="CR")
    row = row_of(patient)
    assert (row["best_response"], row["cr"]) == ("NR", 0)


# --- relapse-free and overall survival ------------------------------------------------------


def test_relapse_then_death():
    row = row_of(infused_patient(relapse=200, death=260))
    assert (row["rfs_days"], row["rfs_event"]) == (200, 1)
    assert row["rfs_from_cr_days"] == 200 - 28
    assert (row["os_days"], row["os_event"]) == (260, 1)
    assert (row["relapse_day"], row["death_day"]) == (200, 260)
    assert row["cir_event"] == 1
    assert row["last_followup_day"] == 260


def test_death_in_remission_ends_rfs_and_competes_with_relapse():
    row = row_of(infused_patient(death=150))
    assert (row["rfs_days"], row["rfs_event"]) == (150, 1)
    assert (row["os_days"], row["os_event"]) == (150, 1)
    assert row["cir_event"] == 2
    assert blank(row["relapse_day"])


def test_relapse_and_death_on_one_day_is_a_relapse_for_cumulative_incidence():
    row = row_of(infused_patient(relapse=90, death=90))
    assert (row["rfs_days"], row["cir_event"]) == (90, 1)


def test_alive_in_remission_is_censored_at_the_last_contact():
    # The last-follow-up event says day 240, but a later B-cell count shows the patient on 250.
    row = row_of(infused_patient(followup=240, bcells={7: None, 250: None}))
    assert (row["rfs_days"], row["rfs_event"]) == (250, 0)
    assert (row["os_days"], row["os_event"]) == (250, 0)
    assert row["cir_event"] == 0
    assert row["last_followup_day"] == 250
    assert blank(row["relapse_day"]) and blank(row["death_day"])


def test_relapse_censors_nothing_for_os():
    row = row_of(infused_patient(relapse=120, followup=280))
    assert (row["rfs_days"], row["rfs_event"]) == (120, 1)
    assert (row["os_days"], row["os_event"]) == (280, 0)


def test_rfs_is_blank_for_patients_not_in_remission():
    row = row_of(infused_patient(responses=((28, "NR"),), death=95))
    assert (row["os_days"], row["os_event"]) == (95, 1)
    for column in ("cr_day", "rfs_days", "rfs_event", "rfs_from_cr_days", "cir_event"):
        assert blank(row[column]), column


def test_hsct_day_is_recorded_and_does_not_end_rfs():
    row = row_of(infused_patient(hsct=110, followup=290))
    assert row["hsct_day"] == 110
    assert (row["rfs_days"], row["rfs_event"]) == (290, 0)


def test_events_before_the_infusion_are_history_not_outcomes():
    patient = infused_patient(followup=180)
    EventFactory(patient=patient, kind="relapse", event_date=on(-60))
    EventFactory(patient=patient, kind="hsct", event_date=on(-200))
    row = row_of(patient)
    assert blank(row["relapse_day"]) and blank(row["hsct_day"])
    assert (row["rfs_days"], row["rfs_event"]) == (180, 0)


# --- B-cell regeneration ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("bcells", "relapse", "regen_day", "early", "late"),
    [
        pytest.param({7: None, 14: 0, 30: 12}, None, 30, 1, 0, id="day-30-early"),
        pytest.param({7: 0, 46: 12}, None, 46, 0, 1, id="day-46-late"),
        pytest.param({7: None, 45: 3}, None, 45, 1, 0, id="day-45-still-early"),
        pytest.param({7: 50, 14: 80}, None, None, None, None, id="never-aplastic"),
        pytest.param({7: None, 14: None, 90: None}, None, None, 0, 0, id="persistent-aplasia"),
        pytest.param({0: 150, 7: None, 21: 4}, None, 21, 1, 0, id="day-0-count-ignored"),
        pytest.param({7: None, 30: 9}, 60, 30, 1, 0, id="before-relapse"),
        pytest.param({7: None, 60: 25}, 60, None, 0, 0, id="on-relapse-day-is-disease"),
        pytest.param({7: None, 75: 25}, 60, None, 0, 0, id="after-relapse-is-disease"),
    ],
)
def test_regeneration(bcells, relapse, regen_day, early, late):
    row = row_of(infused_patient(bcells=bcells, relapse=relapse, followup=200))
    assert (blank(row["regen_day"]) and regen_day is None) or row["regen_day"] == regen_day
    assert (blank(row["early_regen"]) and early is None) or row["early_regen"] == early
    assert (blank(row["late_regen"]) and late is None) or row["late_regen"] == late


@pytest.mark.parametrize(
    "bcells, hsct, regen_day, late",
    [
        pytest.param({7: None, 120: 30}, 97, None, 0, id="after-hsct-is-the-donors"),
        pytest.param({7: None, 80: 30}, 80, None, 0, id="on-hsct-day-is-the-donors"),
        pytest.param({7: None, 70: 30}, 97, 70, 1, id="before-hsct-is-late-regeneration"),
    ],
)
def test_b_cells_after_an_allogeneic_hsct_are_not_regeneration(bcells, hsct, regen_day, late):
    """As the chart and the rules read them (DEMO-033, -042 and -046: HSCT on day 97, 80 and 105,
    the first B cells on day 120, 120 and 150 lost the chart's late mark, the dataset kept 1)."""
    row = row_of(infused_patient(bcells=bcells, hsct=hsct, followup=200))
    assert (blank(row["regen_day"]) and regen_day is None) or row["regen_day"] == regen_day
    assert (row["early_regen"], row["late_regen"]) == (0, late)
    assert (blank(row["center_regen_day"]) and regen_day is None) or (
        row["center_regen_day"] == regen_day
    )


def test_regeneration_day_is_the_calendar_day_in_the_centers_time_zone():
    shanghai = CenterFactory(code="beta", name="Center Beta", time_zone="Asia/Shanghai")
    patient = infused_patient(center=shanghai, bcells={7: None}, followup=120)
    # 20:00 UTC on day 29 is 04:00 on day 30 in Shanghai.
    LabResultFactory(
        patient=patient,
        collected_at=datetime.combine(on(29), time(20, 0), tzinfo=UTC),
        value=Decimal(7),
    )
    assert row_of(patient)["regen_day"] == 30


def test_counts_after_a_second_infusion_belong_to_that_infusion():
    patient = infused_patient(bcells={7: None, 14: None}, followup=200)
    InfusionFactory(patient=patient, infusion_date=on(20), infusion_number=2)
    _lab(patient, units.PB_BCELL_ABS, 30, 40, units.CELLS_PER_UL, INFUSED)
    row = row_of(patient)
    assert blank(row["regen_day"])
    assert row["early_regen"] == 0


def test_a_centers_own_alert_window_does_not_redefine_early_regeneration_in_the_dataset():
    """Alert parameters are per center (CLINICAL.md 4); the analysis column is the study's.

    The data dictionary defines early_regen as regen_day <= 45 and validate_analysis_frame
    enforces it, so one center widening its alert window must not make its rows invalid (that
    would break every snapshot and every export).
    """
    from monitoring.services import rule_parameters_publish

    center = CenterFactory(code="alpha", name="Center Alpha")
    rule_parameters_publish(center=center, user=None, values={"window_days": 60})
    patient = infused_patient(center=center, bcells={7: None, 50: 12}, followup=200)
    frame = analysis_frame()
    row = frame.loc[frame["study_id"] == patient.study_id].iloc[0]
    assert row["regen_day"] == 50
    assert (row["early_regen"], row["late_regen"]) == (0, 1)
    validate_analysis_frame(frame)


# --- marrow: MRD and CAR transgene copies --------------------------------------------------------


@pytest.mark.parametrize(
    ("mrd", "relapse", "expected"),
    [
        pytest.param({28: None, 90: 0.02}, None, 1, id="0.02%-positive"),
        pytest.param({28: 0.01}, None, 1, id="threshold-is-positive"),
        pytest.param({28: 0.005, 90: None}, None, 0, id="below-threshold"),
        pytest.param({28: None}, None, 0, id="undetectable"),
        pytest.param({}, None, None, id="not-measured"),
        pytest.param({28: None, 120: 3.5}, 120, 0, id="relapse-marrow-not-counted"),
        pytest.param({120: 3.5}, 120, None, id="only-at-relapse"),
    ],
)
def test_mrd_positive(mrd, relapse, expected):
    row = row_of(infused_patient(mrd=mrd, relapse=relapse, followup=200))
    assert (blank(row["mrd_positive"]) and expected is None) or row["mrd_positive"] == expected


@pytest.mark.parametrize(
    ("car", "expected"),
    [
        pytest.param({28: 5000, 90: None}, 1, id="lost"),
        pytest.param({28: 5000, 90: 800, 180: 200}, 0, id="retained"),
        pytest.param({28: None, 90: 300}, 0, id="appears-late"),
        pytest.param({}, None, id="not-measured"),
    ],
)
def test_car_loss(car, expected):
    row = row_of(infused_patient(car=car, followup=200))
    assert (blank(row["car_loss"]) and expected is None) or row["car_loss"] == expected


# --- pre-emptive therapy --------------------------------------------------------------------------


def test_first_preemptive_therapy_gives_category_and_day():
    patient = infused_patient(therapy=(40, "immunomodulatory"), followup=200)
    TherapyFactory(patient=patient, start_date=on(90), category="anti_leukemic")
    row = row_of(patient)
    assert (row["preemptive_category"], row["preemptive_day"]) == ("immunomodulatory", 40)


def test_no_preemptive_therapy_is_none_with_blank_day():
    row = row_of(infused_patient(followup=200))
    assert row["preemptive_category"] == "none"
    assert blank(row["preemptive_day"])


# --- cohort filters ------------------------------------------------------------------------


@pytest.fixture
def two_centers():
    alpha = CenterFactory(code="alpha", name="Center Alpha")
    beta = CenterFactory(code="beta", name="Center Beta", time_zone="Asia/Shanghai")
    infused_patient(
        center=alpha,
        study_id="A-1",
        product="tisagenlecleucel",
        infused=date(2024, 2, 1),
        followup=100,
    )
    infused_patient(
        center=alpha, study_id="A-2", product="academic", infused=date(2024, 6, 1), followup=100
    )
    late = infused_patient(
        center=beta,
        study_id="B-1",
        product="tisagenlecleucel",
        infused=date(2024, 9, 1),
        followup=100,
    )
    # A second infusion inside a date range must not pull its patient into that range.
    early = infused_patient(
        center=beta, study_id="B-2", product="academic", infused=date(2023, 12, 1), followup=300
    )
    InfusionFactory(
        patient=early,
        infusion_date=date(2024, 6, 10),
        infusion_number=2,
        product="tisagenlecleucel",
    )
    return late


@pytest.mark.parametrize(
    ("cohort", "expected"),
    [
        (CohortFilter(), ["A-1", "A-2", "B-1", "B-2"]),
        (CohortFilter(center="alpha"), ["A-1", "A-2"]),
        (CohortFilter(center="beta"), ["B-1", "B-2"]),
        (CohortFilter(product="tisagenlecleucel"), ["A-1", "B-1"]),
        (CohortFilter(infused_from=date(2024, 3, 1)), ["A-2", "B-1"]),
        (CohortFilter(infused_to=date(2024, 6, 1)), ["A-1", "A-2", "B-2"]),
        (CohortFilter(infused_from=date(2024, 6, 1), infused_to=date(2024, 6, 30)), ["A-2"]),
        (CohortFilter(center="beta", product="tisagenlecleucel"), ["B-1"]),
        (CohortFilter(center="gamma"), []),
    ],
    ids=lambda value: value.key if isinstance(value, CohortFilter) else None,
)
def test_cohort_filters_select_rows(two_centers, cohort, expected):
    assert analysis_frame(cohort)["study_id"].tolist() == expected


# --- the table as the statistics and the export see it ------------------------------------------


@pytest.fixture
def varied_cohort():
    patients = [
        infused_patient(
            relapse=200,
            death=260,
            bcells={7: None, 30: 12},
            mrd={28: 0.02},
            car={28: 900, 90: None},
            therapy=(33, "anti_leukemic"),
        ),
        infused_patient(death=150, bcells={7: 0, 46: 12}, mrd={28: None}),
        infused_patient(followup=240, hsct=100, bcells={7: 50}),
        infused_patient(responses=((28, "NR"),), death=95),
        infused_patient(
            responses=((28, "CRi"),), relapse=120, followup=280, bcells={7: None, 14: None}
        ),
    ]
    for patient in patients:
        Patient.objects.filter(pk=patient.pk).update(
            mrn=f"MRN-77{patient.pk:04d}",
            full_name=f"Erika Mustermann {patient.pk}",
            date_of_birth=date(1987, 4, 23),
        )
    return patients


def test_frame_passes_the_data_dictionarys_validation(varied_cohort):
    frame = analysis_frame()
    typed = validate_analysis_frame(frame)
    assert len(typed) == len(varied_cohort)
    assert typed["cr"].tolist() == [1, 1, 1, 0, 1]


def test_csv_round_trips_through_the_reader(varied_cohort):
    frame = analysis_frame()
    from_csv = read_analysis_csv(io.StringIO(analysis_csv(frame)))
    pd.testing.assert_frame_equal(from_csv, validate_analysis_frame(frame))


def test_csv_writes_whole_days_without_decimals_and_blanks_as_empty(varied_cohort):
    text = analysis_csv(analysis_frame())
    header, first = text.splitlines()[:2]
    cells = dict(zip(header.split(","), first.split(","), strict=True))
    assert cells["rfs_days"] == "200"
    assert cells["hsct_day"] == ""
    assert ".0" not in text


def test_csv_carries_no_identifiers(varied_cohort):
    text = analysis_csv(analysis_frame())
    assert "MRN-77" not in text
    assert "Mustermann" not in text
    assert "1987-04-23" not in text
    assert "1987" not in text
    for patient in varied_cohort:
        assert patient.study_id in text
