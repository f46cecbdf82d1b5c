"""Unit conversions (CLINICAL.md section 2, "Units"): counts are kept in cells/µL."""

from datetime import datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from patients import units
from patients.services import LabValue, lab_results_record
from tests.factories import InfusionFactory

BERLIN = ZoneInfo("Europe/Berlin")


@pytest.mark.parametrize("analyte", [units.PB_BCELL_ABS, units.ALC])
def test_giga_per_litre_is_a_thousand_cells_per_microlitre(analyte):
    # 1 ×10⁹/L = 10⁹ cells / 10⁶ µL = 1000 cells/µL
    assert units.to_canonical(analyte, Decimal("1.2"), units.GIGA_PER_L) == Decimal(1200)
    assert units.to_canonical(analyte, Decimal("0.005"), units.GIGA_PER_L) == Decimal(5)


@pytest.mark.parametrize("analyte", [units.PB_BCELL_ABS, units.ALC])
def test_mega_per_litre_is_one_cell_per_microlitre(analyte):
    assert units.to_canonical(analyte, Decimal(37), units.MEGA_PER_L) == Decimal(37)


def test_cells_per_microlitre_is_kept_as_entered():
    assert units.to_canonical(units.PB_BCELL_ABS, Decimal("12.5"), units.CELLS_PER_UL) == Decimal(
        "12.5"
    )


def test_percent_of_lymphocytes_with_alc_of_the_same_sample_gives_an_absolute_count():
    alc = units.to_canonical(units.ALC, Decimal("1.2"), units.GIGA_PER_L)  # 1200 cells/µL
    # 2.5 % of 1200 lymphocytes/µL are 30 B cells/µL
    assert units.bcell_count_from_percent(Decimal("2.5"), alc) == Decimal(30)
    assert units.bcell_count_from_percent(Decimal(0), alc) == Decimal(0)
    assert units.bcell_count_from_percent(Decimal(100), Decimal(850)) == Decimal(850)


def test_percentages_and_fractions_stay_in_their_own_unit():
    assert units.to_canonical(
        units.PB_BCELL_PCT, Decimal("1.5"), units.PERCENT_LYMPHOCYTES
    ) == Decimal("1.5")
    assert units.to_canonical(units.BM_MRD_NGS, Decimal("0.0001"), units.FRACTION) == Decimal(
        "0.0001"
    )


@pytest.mark.parametrize(
    ("analyte", "unit"),
    [
        (units.PB_BCELL_ABS, units.PERCENT_LYMPHOCYTES),  # a percentage is not a count
        (units.PB_BCELL_PCT, units.CELLS_PER_UL),  # nor a count a percentage
        (units.BM_MRD_FLOW, units.FRACTION),  # flow MRD is % of cells; NGS is the fraction
        (units.BM_MRD_NGS, units.PERCENT_CELLS),
        (units.ALC, units.COPIES_PER_UG),
        (units.BM_CAR_COPIES, units.CELLS_PER_UL),
    ],
)
def test_a_unit_that_does_not_fit_the_analyte_raises(analyte, unit):
    with pytest.raises(ValueError, match="is not a unit of"):
        units.to_canonical(analyte, Decimal(1), unit)


def test_every_analyte_accepts_its_canonical_unit():
    for analyte in units.ANALYTES.values():
        assert analyte.canonical_unit in analyte.units
        assert units.to_canonical(analyte.code, Decimal(3), analyte.canonical_unit) == Decimal(3)


def test_a_recorded_alc_in_giga_per_litre_is_stored_with_its_canonical_count(
    center, clinician, frozen_now
):
    infusion = InfusionFactory(patient__center=center)
    (alc,) = lab_results_record(
        patient=infusion.patient,
        collected_at=datetime(2025, 3, 15, 8, 0, tzinfo=BERLIN),
        values=[LabValue(analyte=units.ALC, value=Decimal("1.2"), unit=units.GIGA_PER_L)],
        entered_by=clinician,
    )
    alc.refresh_from_db()
    # As entered, and converted: the rules and analyses read the canonical value.
    assert (alc.value, alc.unit) == (Decimal("1.2"), units.GIGA_PER_L)
    assert (alc.canonical_value, alc.canonical_unit) == (Decimal(1200), units.CELLS_PER_UL)
