"""Plausibility (CLINICAL.md section 2): hard limits refuse, soft limits need a confirmation that
is kept in the audit trail; limits are per center and versioned."""

from datetime import datetime
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError

from patients import plausibility_checks, units
from patients.models import LabResult, PlausibilityLimits
from patients.plausibility import HARD, SOFT, Limits, check_sample
from patients.services import LabValue, lab_results_record, plausibility_limits_publish
from tests.factories import BERLIN, LabResultFactory

D = Decimal
SAMPLE = datetime(2025, 3, 20, 8, 0, tzinfo=BERLIN)


def checks(findings):
    return sorted((f.analyte, f.level, f.check) for f in findings)


def test_the_clinical_md_defaults_in_canonical_units():
    assert checks(check_sample({units.PB_BCELL_ABS: D(2000)}, Limits())) == []
    assert checks(check_sample({units.PB_BCELL_ABS: D(2001)}, Limits())) == [
        (units.PB_BCELL_ABS, SOFT, "above_soft_limit")
    ]
    assert checks(check_sample({units.PB_BCELL_ABS: D(100_001)}, Limits())) == [
        (units.PB_BCELL_ABS, HARD, "above_hard_limit")
    ]
    # ALC 50 and 1,000 ×10⁹/L; the 4,321 ×10⁹/L is refused.
    assert checks(check_sample({units.ALC: D(50_000)}, Limits())) == []
    assert checks(check_sample({units.ALC: D(50_001)}, Limits()))[0][1] == SOFT
    assert checks(check_sample({units.ALC: D(4_321_000)}, Limits()))[0][1] == HARD
    assert checks(check_sample({units.BM_CAR_COPIES: D(10) ** 6 + 1}, Limits()))[0][1] == SOFT
    assert checks(check_sample({units.PB_CAR_COPIES: D(10) ** 8 + 1}, Limits()))[0][1] == HARD


def test_b_cells_above_the_alc_of_the_same_sample_need_a_confirmation():
    # The case: B cells 15 ×10⁹/L beside an ALC of 0.2 ×10⁹/L.
    found = check_sample({units.PB_BCELL_ABS: D(15_000), units.ALC: D(200)}, Limits())
    assert (units.PB_BCELL_ABS, SOFT, "bcells_above_alc") in checks(found)
    assert checks(check_sample({units.PB_BCELL_ABS: D(150), units.ALC: D(200)}, Limits())) == []


@pytest.mark.parametrize(
    ("previous", "value", "slip"),
    [
        (D("0.012"), D(12), True),  # ×10⁹/L typed as cells/µL: 1,000×
        (D(12), D("0.012"), True),  # and the other way
        (D("0.012"), D("11.9"), False),  # just under 1,000×
        (D(12), D("0.0121"), False),
    ],
)
def test_a_thousandfold_jump_from_the_previous_non_zero_value_is_a_unit_slip(previous, value, slip):
    found = check_sample({units.PB_BCELL_ABS: value}, Limits(), {units.PB_BCELL_ABS: previous})
    assert ("unit_slip" in [f.check for f in found]) is slip


def test_the_service_refuses_hard_and_asks_for_soft_then_records_the_confirmation(
    infused_patient, clinician, frozen_now
):
    with pytest.raises(ValidationError) as refused:
        lab_results_record(
            patient=infused_patient,
            collected_at=SAMPLE,
            values=[LabValue(units.ALC, D(4321), units.GIGA_PER_L, confirmed=True)],
            entered_by=clinician,
        )
    (error,) = refused.value.error_dict["alc-value"]
    assert error.code == plausibility_checks.IMPLAUSIBLE and "4321 ×10⁹/L" in error.message

    soft = [
        LabValue(units.PB_BCELL_ABS, D(15), units.GIGA_PER_L),
        LabValue(units.ALC, D("0.2"), units.GIGA_PER_L),
    ]
    with pytest.raises(ValidationError) as asked:
        lab_results_record(
            patient=infused_patient, collected_at=SAMPLE, values=soft, entered_by=clinician
        )
    codes = {e.code for e in asked.value.error_dict["pb_bcell_abs-value"]}
    assert codes == {plausibility_checks.UNCONFIRMED}
    assert LabResult.objects.count() == 0

    soft[0] = LabValue(units.PB_BCELL_ABS, D(15), units.GIGA_PER_L, confirmed=True)
    lab_results_record(
        patient=infused_patient, collected_at=SAMPLE, values=soft, entered_by=clinician
    )
    bcells = LabResult.objects.get(analyte=units.PB_BCELL_ABS)
    assert bcells.plausibility_confirmed and bcells.plausibility_confirmed_by == clinician
    assert "more than all lymphocytes" in bcells.plausibility_warning
    audit = bcells.history.get()
    assert audit.plausibility_confirmed and audit.history_user == clinician
    assert audit.plausibility_confirmed_by_id == clinician.pk
    alc = LabResult.objects.get(analyte=units.ALC)
    assert not alc.plausibility_confirmed


def test_the_unit_slip_is_read_against_the_patients_stored_values(
    infused_patient, clinician, frozen_now
):
    LabResultFactory(
        patient=infused_patient,
        collected_at=datetime(2025, 3, 10, 8, 0, tzinfo=BERLIN),
        value=D("0.012"),
        unit=units.GIGA_PER_L,
        canonical_value=D(12),
    )
    with pytest.raises(ValidationError) as asked:
        lab_results_record(
            patient=infused_patient,
            collected_at=SAMPLE,
            values=[LabValue(units.PB_BCELL_ABS, D(12_000), units.CELLS_PER_UL)],
            entered_by=clinician,
        )
    assert "1000 times the patient's previous" in str(asked.value)


def test_limits_are_per_center_and_every_change_is_a_new_version(
    infused_patient, clinician, frozen_now, center
):
    first = plausibility_limits_publish(
        center=center, user=clinician, values={"bcell_abs_soft": D(500)}, note="stricter"
    )
    second = plausibility_limits_publish(
        center=center, user=clinician, values={"bcell_abs_soft": D(800)}
    )
    first.refresh_from_db()
    assert (first.version, first.is_current, second.version, second.is_current) == (
        1,
        False,
        2,
        True,
    )
    assert plausibility_checks.plausibility_limits_for(center).bcell_abs_soft == D(800)
    assert plausibility_checks.plausibility_limits_for(center).version == "alpha-v2"
    with pytest.raises(ValidationError):
        lab_results_record(
            patient=infused_patient,
            collected_at=SAMPLE,
            values=[LabValue(units.PB_BCELL_ABS, D(900), units.CELLS_PER_UL)],
            entered_by=clinician,
        )
    with pytest.raises(ValidationError):  # a confirm limit above the refuse limit
        plausibility_limits_publish(center=center, user=clinician, values={"alc_soft": D(10) ** 7})
    assert PlausibilityLimits.objects.filter(center=center).count() == 2
