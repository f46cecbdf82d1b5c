"""Bad input is refused with a field-level message and nothing is saved (CLINICAL.md section 2).

Each case goes through the services that every door (browser, admin, API) uses, and checks the
error's keys and text and that no row (nor audit row) was written.
"""

from datetime import date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from django.core.exceptions import ValidationError

from patients import units
from patients.models import (
    ClinicalEvent,
    Infusion,
    LabResult,
    Patient,
    PreemptiveTherapy,
    ResponseAssessment,
)
from patients.services import LabValue, clinical_record_save, lab_results_record, patient_save
from tests.factories import EventFactory, InfusionFactory, LabResultFactory, PatientFactory

BERLIN = ZoneInfo("Europe/Berlin")
SAMPLED = datetime(2025, 3, 15, 8, 0, tzinfo=BERLIN)  # day 14 of the fixtures' infusion
TOMORROW = date(2025, 11, 4)  # FIXED_NOW is 3 Nov 2025, 11:00 in Berlin
BEFORE_BIRTH = date(1990, 5, 16)  # the fixtures' patient was born on 17 May 1990

CLINICAL_MODELS = [
    Patient,
    Infusion,
    LabResult,
    ResponseAssessment,
    ClinicalEvent,
    PreemptiveTherapy,
]

pytestmark = pytest.mark.usefixtures("frozen_now")


def _row_counts() -> dict[str, int]:
    counts = {}
    for model in CLINICAL_MODELS:
        counts[model.__name__] = model.objects.count()
        counts[f"{model.__name__} history"] = model.history.count()
    return counts


def refusal(action) -> dict[str, list[str]]:
    """Run a service call that must be refused; return its field -> messages."""
    before = _row_counts()
    with pytest.raises(ValidationError) as caught:
        action()
    assert _row_counts() == before, "a refused change must save nothing"
    return caught.value.message_dict


def record(patient, *values: LabValue, collected_at: datetime = SAMPLED, user=None):
    return lab_results_record(
        patient=patient, collected_at=collected_at, values=list(values), entered_by=user
    )


def count(value, unit=units.CELLS_PER_UL, analyte=units.PB_BCELL_ABS, qualifier=""):
    return LabValue(
        analyte=analyte,
        value=None if value is None else Decimal(value),
        unit=unit,
        qualifier=qualifier,
    )


# Lab values -------------------------------------------------------------------------------


def test_a_valid_sample_is_saved(infused_patient, clinician):
    saved = record(
        infused_patient, count("0"), count("1.2", units.GIGA_PER_L, units.ALC), user=clinician
    )
    assert len(saved) == 2
    assert LabResult.objects.filter(patient=infused_patient, collected_at=SAMPLED).count() == 2


def test_a_negative_count_is_refused(infused_patient):
    errors = refusal(lambda: record(infused_patient, count("-0.3", units.GIGA_PER_L, units.ALC)))
    assert errors == {"alc-value": ["A value cannot be negative."]}


@pytest.mark.parametrize(
    ("analyte", "unit"),
    [(units.PB_BCELL_PCT, units.PERCENT_LYMPHOCYTES), (units.BM_MRD_FLOW, units.PERCENT_CELLS)],
)
def test_a_percentage_over_100_is_refused(infused_patient, analyte, unit):
    errors = refusal(lambda: record(infused_patient, count("100.5", unit, analyte)))
    assert errors == {f"{analyte}-value": ["A percentage cannot be over 100."]}


@pytest.mark.parametrize(
    ("analyte", "unit"),
    [(units.PB_BCELL_PCT, units.PERCENT_LYMPHOCYTES), (units.BM_MRD_FLOW, units.PERCENT_CELLS)],
)
def test_a_percentage_of_exactly_100_is_accepted(infused_patient, analyte, unit):
    (result,) = record(infused_patient, count("100", unit, analyte))
    assert result.pk is not None


def test_an_ngs_mrd_fraction_over_1_is_refused(infused_patient):
    errors = refusal(
        lambda: record(infused_patient, count("1.5", units.FRACTION, units.BM_MRD_NGS))
    )
    assert errors == {"bm_mrd_ngs-value": ["A fraction cannot be over 1."]}


def test_an_ngs_mrd_fraction_of_1_in_10_000_is_accepted(infused_patient):
    (result,) = record(infused_patient, count("0.0001", units.FRACTION, units.BM_MRD_NGS))
    assert result.canonical_value == Decimal("0.0001")


def test_a_percentage_unit_for_an_absolute_count_is_refused(infused_patient):
    errors = refusal(lambda: record(infused_patient, count("3", units.PERCENT_LYMPHOCYTES)))
    assert errors == {
        "pb_bcell_abs-unit": [
            "% of lymphocytes is not a unit of PB B cells (CD19+), absolute; "
            "use cells/µL, ×10⁹/L, ×10⁶/L."
        ]
    }


def test_a_count_unit_for_flow_mrd_is_refused(infused_patient):
    errors = refusal(
        lambda: record(infused_patient, count("3", units.CELLS_PER_UL, units.BM_MRD_FLOW))
    )
    assert errors == {
        "bm_mrd_flow-unit": ["cells/µL is not a unit of BM MRD, flow cytometry; use % of cells."]
    }


def test_a_value_and_a_qualifier_together_are_refused(infused_patient):
    errors = refusal(lambda: record(infused_patient, count("0", qualifier=units.UNDETECTABLE)))
    assert errors == {
        "pb_bcell_abs-qualifier": [
            "Give either a value or a qualifier, not both: an undetectable result is stored as a "
            "qualifier, never as a number."
        ]
    }


def test_a_result_with_neither_value_nor_qualifier_is_refused(infused_patient):
    errors = refusal(lambda: record(infused_patient, count(None)))
    assert errors == {
        "pb_bcell_abs-value": ["Enter a value, or choose a qualifier such as “Undetectable”."]
    }


def test_an_undetectable_count_is_stored_as_a_qualifier_without_a_number(infused_patient):
    (result,) = record(infused_patient, count(None, qualifier=units.UNDETECTABLE))
    result.refresh_from_db()
    assert result.value is None and result.canonical_value is None
    assert result.qualifier == units.UNDETECTABLE


def test_a_collection_time_in_the_future_is_refused_once_for_the_whole_sample(infused_patient):
    in_an_hour = datetime(2025, 11, 3, 12, 0, tzinfo=BERLIN)  # now is 11:00 in Berlin
    errors = refusal(
        lambda: record(
            infused_patient,
            count("0"),
            count("1.2", units.GIGA_PER_L, units.ALC),
            collected_at=in_an_hour,
        )
    )
    assert errors == {"collected_at": ["The collection time is in the future."]}


def test_a_collection_earlier_today_is_accepted(infused_patient):
    (result,) = record(
        infused_patient, count("0"), collected_at=datetime(2025, 11, 3, 10, 30, tzinfo=BERLIN)
    )
    assert result.pk is not None


def test_a_collection_before_birth_is_refused(infused_patient):
    errors = refusal(
        lambda: record(
            infused_patient,
            count("0"),
            collected_at=datetime.combine(BEFORE_BIRTH, datetime.min.time(), tzinfo=BERLIN),
        )
    )
    assert errors == {
        "collected_at": ["The collection date is before the patient's birth (17 May 1990)."]
    }


def test_an_exact_duplicate_of_a_stored_result_is_refused(infused_patient):
    LabResultFactory(patient=infused_patient, collected_at=SAMPLED)
    errors = refusal(lambda: record(infused_patient, count("4")))
    assert errors == {
        "collected_at": [
            "PB B cells (CD19+), absolute collected at this time is already recorded for this "
            "patient: correct the existing result instead of entering it again."
        ]
    }


def test_the_same_instant_written_in_another_time_zone_is_still_a_duplicate(infused_patient):
    LabResultFactory(patient=infused_patient, collected_at=SAMPLED)
    same_instant = SAMPLED.astimezone(ZoneInfo("UTC"))
    errors = refusal(lambda: record(infused_patient, count("4"), collected_at=same_instant))
    assert list(errors) == ["collected_at"]


def test_a_second_sample_later_the_same_day_is_not_a_duplicate(infused_patient):
    LabResultFactory(patient=infused_patient, collected_at=SAMPLED)
    record(infused_patient, count("4"), collected_at=SAMPLED + timedelta(hours=6))
    assert LabResult.objects.filter(patient=infused_patient).count() == 2


def test_the_same_count_of_another_patient_is_not_a_duplicate(infused_patient, center):
    other = PatientFactory(center=center)
    LabResultFactory(patient=other, collected_at=SAMPLED)
    (result,) = record(infused_patient, count("0"))
    assert result.pk is not None


def test_one_analyte_entered_twice_in_one_sample_is_refused(infused_patient):
    errors = refusal(lambda: record(infused_patient, count("0"), count("3")))
    assert errors == {"pb_bcell_abs-value": ["This analyte is entered twice for one sample."]}


def test_a_sample_with_one_bad_analyte_saves_none_of_its_analytes(infused_patient):
    errors = refusal(
        lambda: record(
            infused_patient,
            count(None, qualifier=units.UNDETECTABLE),
            count("1.2", units.GIGA_PER_L, units.ALC),
            count("120", units.PERCENT_LYMPHOCYTES, units.PB_BCELL_PCT),
        )
    )
    assert errors == {"pb_bcell_pct-value": ["A percentage cannot be over 100."]}


def test_every_bad_analyte_of_a_sample_gets_its_own_message(infused_patient):
    errors = refusal(
        lambda: record(
            infused_patient,
            count("-1"),
            count("120", units.PERCENT_LYMPHOCYTES, units.PB_BCELL_PCT),
        )
    )
    assert errors == {
        "pb_bcell_abs-value": ["A value cannot be negative."],
        "pb_bcell_pct-value": ["A percentage cannot be over 100."],
    }


def test_a_sample_without_any_result_is_refused(infused_patient):
    assert refusal(lambda: record(infused_patient)) == {"__all__": ["Enter at least one result."]}


def test_a_bone_marrow_specimen_for_a_peripheral_blood_count_is_refused(infused_patient):
    result = LabResult(
        patient=infused_patient,
        analyte=units.PB_BCELL_ABS,
        specimen=units.BM,
        collected_at=SAMPLED,
        value=Decimal(0),
        unit=units.CELLS_PER_UL,
    )
    errors = refusal(lambda: clinical_record_save(instance=result, user=None))
    assert list(errors) == ["specimen"]
    (message,) = errors["specimen"]
    assert message.lower() == (
        "pb b cells (cd19+), absolute is measured in peripheral blood, not bone marrow."
    )


def test_a_peripheral_blood_specimen_for_marrow_mrd_is_refused(infused_patient):
    result = LabResult(
        patient=infused_patient,
        analyte=units.BM_MRD_FLOW,
        specimen=units.PB,
        collected_at=SAMPLED,
        value=Decimal("0.1"),
        unit=units.PERCENT_CELLS,
    )
    errors = refusal(lambda: clinical_record_save(instance=result, user=None))
    assert list(errors) == ["specimen"]
    assert errors["specimen"][0].lower() == (
        "bm mrd, flow cytometry is measured in bone marrow, not peripheral blood."
    )


def test_correcting_a_result_to_a_negative_value_keeps_the_stored_value(infused_patient):
    (result,) = record(infused_patient, count("5"))
    result.value = Decimal(-5)
    errors = refusal(lambda: clinical_record_save(instance=result, user=None))
    assert errors == {"value": ["A value cannot be negative."]}
    result.refresh_from_db()
    assert result.value == Decimal(5)


def test_correcting_a_result_onto_the_time_of_another_is_a_duplicate(infused_patient):
    LabResultFactory(patient=infused_patient, collected_at=SAMPLED)
    (later,) = record(infused_patient, count("3"), collected_at=SAMPLED + timedelta(days=7))
    later.collected_at = SAMPLED
    errors = refusal(lambda: clinical_record_save(instance=later, user=None))
    assert list(errors) == ["collected_at"]


def test_correcting_a_result_without_changing_its_time_is_not_a_duplicate_of_itself(
    infused_patient,
):
    (result,) = record(infused_patient, count("5"))
    result.value = Decimal(7)
    clinical_record_save(instance=result, user=None)
    result.refresh_from_db()
    assert result.canonical_value == Decimal(7)


# Dates in the future and before birth ---------------------------------------------------------


def test_an_infusion_date_in_the_future_is_refused(patient):
    infusion = Infusion(
        patient=patient, infusion_date=TOMORROW, infusion_number=1, product="CD19 CAR-T"
    )
    errors = refusal(lambda: clinical_record_save(instance=infusion, user=None))
    assert errors == {"infusion_date": ["The infusion date 04 Nov 2025 is in the future."]}


def test_an_infusion_today_is_accepted(patient):
    infusion = Infusion(
        patient=patient, infusion_date=date(2025, 11, 3), infusion_number=1, product="CD19 CAR-T"
    )
    clinical_record_save(instance=infusion, user=None)
    assert infusion.pk is not None


def test_an_infusion_before_birth_is_refused(patient):
    infusion = Infusion(
        patient=patient, infusion_date=BEFORE_BIRTH, infusion_number=1, product="CD19 CAR-T"
    )
    errors = refusal(lambda: clinical_record_save(instance=infusion, user=None))
    assert errors == {
        "infusion_date": [
            "The infusion date 16 May 1990 is before the patient's birth (17 May 1990)."
        ]
    }


def test_an_event_date_in_the_future_is_refused(infused_patient):
    event = ClinicalEvent(patient=infused_patient, kind="last_followup", event_date=TOMORROW)
    errors = refusal(lambda: clinical_record_save(instance=event, user=None))
    assert errors == {"event_date": ["The event date 04 Nov 2025 is in the future."]}


def test_an_event_before_birth_is_refused(infused_patient):
    event = ClinicalEvent(patient=infused_patient, kind="last_followup", event_date=BEFORE_BIRTH)
    errors = refusal(lambda: clinical_record_save(instance=event, user=None))
    assert errors == {
        "event_date": ["The event date 16 May 1990 is before the patient's birth (17 May 1990)."]
    }


def test_a_response_assessment_in_the_future_is_refused(infused_patient):
    response = ResponseAssessment(patient=infused_patient, assessed_on=TOMORROW, response="CR")
    errors = refusal(lambda: clinical_record_save(instance=response, user=None))
    assert errors == {"assessed_on": ["The assessment date 04 Nov 2025 is in the future."]}


def test_a_response_assessment_before_birth_is_refused(infused_patient):
    response = ResponseAssessment(patient=infused_patient, assessed_on=BEFORE_BIRTH, response="CR")
    errors = refusal(lambda: clinical_record_save(instance=response, user=None))
    assert errors == {
        "assessed_on": [
            "The assessment date 16 May 1990 is before the patient's birth (17 May 1990)."
        ]
    }


def test_a_therapy_start_in_the_future_is_refused(infused_patient):
    therapy = PreemptiveTherapy(
        patient=infused_patient, start_date=TOMORROW, category="anti_leukemic", agent="chemotherapy"
    )
    errors = refusal(lambda: clinical_record_save(instance=therapy, user=None))
    assert errors == {"start_date": ["The start date 04 Nov 2025 is in the future."]}


def test_a_therapy_start_before_birth_is_refused(infused_patient):
    therapy = PreemptiveTherapy(
        patient=infused_patient,
        start_date=BEFORE_BIRTH,
        category="anti_leukemic",
        agent="chemotherapy",
    )
    errors = refusal(lambda: clinical_record_save(instance=therapy, user=None))
    assert errors["start_date"][0] == (
        "The start date 16 May 1990 is before the patient's birth (17 May 1990)."
    )


def test_a_date_of_birth_in_the_future_is_refused(center):
    patient = Patient(center=center, study_id="CT-0100", date_of_birth=TOMORROW)
    errors = refusal(lambda: patient_save(patient=patient, user=None))
    assert errors == {"date_of_birth": ["The date of birth is in the future."]}


def test_a_date_of_birth_after_the_first_infusion_is_refused(infused_patient):
    # Otherwise the infusion (and every dated record) would lie before birth, and the age at
    # infusion would be negative: "a date before birth" is refused whichever date moves.
    infused_patient.date_of_birth = date(2025, 4, 1)
    errors = refusal(lambda: patient_save(patient=infused_patient, user=None))
    assert list(errors) == ["date_of_birth"]
    infused_patient.refresh_from_db()
    assert infused_patient.date_of_birth == date(1990, 5, 17)


# Relapse and death are counted from the first infusion ---------------------------------------


@pytest.mark.parametrize("kind", ["relapse", "death"])
def test_a_relapse_or_death_before_the_first_infusion_is_refused(infused_patient, kind):
    event = ClinicalEvent(patient=infused_patient, kind=kind, event_date=date(2025, 2, 20))
    errors = refusal(lambda: clinical_record_save(instance=event, user=None))
    assert errors == {
        "event_date": [f"A {kind} cannot be before the first infusion (01 Mar 2025)."]
    }


@pytest.mark.parametrize("kind", ["relapse", "death"])
def test_a_relapse_or_death_without_any_infusion_is_refused(patient, kind):
    event = ClinicalEvent(patient=patient, kind=kind, event_date=date(2025, 6, 1))
    errors = refusal(lambda: clinical_record_save(instance=event, user=None))
    assert errors == {
        "kind": ["Record the CAR-T infusion first: a relapse or death is counted from it."]
    }


def test_a_relapse_on_the_day_of_the_first_infusion_is_accepted(infused_patient):
    event = ClinicalEvent(patient=infused_patient, kind="relapse", event_date=date(2025, 3, 1))
    clinical_record_save(instance=event, user=None)
    assert event.pk is not None


def test_a_baseline_event_other_than_relapse_or_death_may_precede_the_infusion(infused_patient):
    event = ClinicalEvent(patient=infused_patient, kind="hsct", event_date=date(2024, 6, 1))
    clinical_record_save(instance=event, user=None)
    assert event.pk is not None


def test_moving_the_first_infusion_after_a_recorded_relapse_is_refused(infused_patient, infusion):
    EventFactory(patient=infused_patient, kind="relapse", event_date=date(2025, 6, 1))
    infusion.infusion_date = date(2025, 7, 1)
    errors = refusal(lambda: clinical_record_save(instance=infusion, user=None))
    assert errors == {
        "infusion_date": ["The relapse on 01 Jun 2025 would then be before the first infusion."]
    }
    infusion.refresh_from_db()
    assert infusion.infusion_date == date(2025, 3, 1)


def test_moving_the_first_infusion_after_a_recorded_death_is_refused(infused_patient, infusion):
    EventFactory(patient=infused_patient, kind="death", event_date=date(2025, 6, 1))
    infusion.infusion_date = date(2025, 6, 2)
    errors = refusal(lambda: clinical_record_save(instance=infusion, user=None))
    assert errors == {
        "infusion_date": ["The death on 01 Jun 2025 would then be before the first infusion."]
    }


def test_moving_the_first_infusion_earlier_is_accepted(infused_patient, infusion):
    EventFactory(patient=infused_patient, kind="relapse", event_date=date(2025, 6, 1))
    infusion.infusion_date = date(2025, 2, 27)
    clinical_record_save(instance=infusion, user=None)
    infusion.refresh_from_db()
    assert infusion.infusion_date == date(2025, 2, 27)


def test_a_second_infusion_after_a_relapse_is_accepted(infused_patient):
    EventFactory(patient=infused_patient, kind="relapse", event_date=date(2025, 6, 1))
    second = InfusionFactory.build(
        patient=infused_patient, infusion_date=date(2025, 7, 1), infusion_number=2
    )
    clinical_record_save(instance=second, user=None)
    assert infused_patient.infusions.count() == 2


# Pre-emptive therapy: the agent decides the category ----------------------------------------


@pytest.mark.parametrize(
    ("agent", "category", "message"),
    [
        ("interferon", "anti_leukemic", "Interferon is immunomodulatory therapy."),
        ("il2", "anti_leukemic", "Interleukin-2 is immunomodulatory therapy."),
        ("chemotherapy", "immunomodulatory", "Chemotherapy is anti-leukemic therapy."),
        ("targeted", "other", "Targeted agent is anti-leukemic therapy."),
        ("second_cart", "immunomodulatory", "Second CAR-T infusion is anti-leukemic therapy."),
    ],
)
def test_a_therapy_agent_in_the_wrong_category_is_refused(
    infused_patient, agent, category, message
):
    therapy = PreemptiveTherapy(
        patient=infused_patient, start_date=date(2025, 4, 10), category=category, agent=agent
    )
    errors = refusal(lambda: clinical_record_save(instance=therapy, user=None))
    assert errors == {"category": [message]}


@pytest.mark.parametrize(
    ("agent", "category"),
    [
        ("targeted", "anti_leukemic"),
        ("il2", "immunomodulatory"),
        ("other", "other"),
        ("other", "anti_leukemic"),
    ],
)
def test_a_therapy_agent_in_its_own_category_is_accepted(infused_patient, agent, category):
    therapy = PreemptiveTherapy(
        patient=infused_patient, start_date=date(2025, 4, 10), category=category, agent=agent
    )
    clinical_record_save(instance=therapy, user=None)
    assert therapy.pk is not None
