"""Analytes, their canonical units and the conversions between units.

Every quantity that CARTtrack stores carries a unit, and every conversion lives here so that the
browser, the admin, the bulk importer, the rules engine and the analyses agree on one meaning.
B-cell and lymphocyte counts are kept canonically in cells/µL (1 ×10⁹/L = 1000 cells/µL,
1 ×10⁶/L = 1 cell/µL). "Undetectable" and "below the limit of detection" are qualifiers, never a
made-up number.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from django.utils.translation import gettext_noop

# Labels are marked (gettext_noop) but stay English here: exports and FHIR displays are neutral;
# pages translate them when shown (monitoring_tags.analyte_label, evidence_value).

# Specimens
PB = "PB"
BM = "BM"
SPECIMEN_CHOICES = [(PB, gettext_noop("Peripheral blood")), (BM, gettext_noop("Bone marrow"))]

# Units (stored as these codes; shown with their labels)
CELLS_PER_UL = "cells/uL"
GIGA_PER_L = "10^9/L"
MEGA_PER_L = "10^6/L"
PERCENT_LYMPHOCYTES = "% lymphocytes"
PERCENT_CELLS = "% cells"
FRACTION = "fraction"
COPIES_PER_UG = "copies/ug gDNA"

UNIT_LABELS = {
    CELLS_PER_UL: "cells/µL",
    GIGA_PER_L: "×10⁹/L",
    MEGA_PER_L: "×10⁶/L",
    PERCENT_LYMPHOCYTES: "% of lymphocytes",
    PERCENT_CELLS: "% of cells",
    FRACTION: "fraction of cells",
    COPIES_PER_UG: "copies/µg gDNA",
}
UNIT_CHOICES = list(UNIT_LABELS.items())

# Multiplier from a unit to the canonical unit of its dimension.
_TO_CELLS_PER_UL = {CELLS_PER_UL: Decimal(1), GIGA_PER_L: Decimal(1000), MEGA_PER_L: Decimal(1)}

# Qualifiers: a result either has a value or one of these.
UNDETECTABLE = "undetectable"
BELOW_LOD = "below_lod"
QUALIFIER_CHOICES = [
    ("", "—"),
    (UNDETECTABLE, gettext_noop("Undetectable")),
    (BELOW_LOD, gettext_noop("Below the limit of detection")),
]


@dataclass(frozen=True)
class Analyte:
    code: str
    label: str
    specimen: str
    canonical_unit: str
    units: tuple[str, ...]
    maximum: Decimal | None = None  # an upper bound that follows from the unit (100 %, fraction 1)

    def to_canonical(self, value: Decimal, unit: str) -> Decimal:
        if unit not in self.units:
            raise ValueError(f"{UNIT_LABELS.get(unit, unit)} is not a unit of {self.label}")
        if unit == self.canonical_unit:
            return value
        return value * _TO_CELLS_PER_UL[unit]


PB_BCELL_ABS = "pb_bcell_abs"
PB_BCELL_PCT = "pb_bcell_pct"
ALC = "alc"
BM_MRD_FLOW = "bm_mrd_flow"
BM_MRD_NGS = "bm_mrd_ngs"
BM_CAR_COPIES = "bm_car_copies"
PB_CAR_COPIES = "pb_car_copies"

_COUNT_UNITS = (CELLS_PER_UL, GIGA_PER_L, MEGA_PER_L)

ANALYTES: dict[str, Analyte] = {
    a.code: a
    for a in (
        Analyte(
            PB_BCELL_ABS,
            gettext_noop("PB B cells (CD19+), absolute"),
            PB,
            CELLS_PER_UL,
            _COUNT_UNITS,
        ),
        Analyte(
            PB_BCELL_PCT,
            # xgettext:no-python-format
            gettext_noop("PB B cells (CD19+), % of lymphocytes"),
            PB,
            PERCENT_LYMPHOCYTES,
            (PERCENT_LYMPHOCYTES,),
            Decimal(100),
        ),
        Analyte(ALC, gettext_noop("Absolute lymphocyte count"), PB, CELLS_PER_UL, _COUNT_UNITS),
        Analyte(
            BM_MRD_FLOW,
            gettext_noop("BM MRD, flow cytometry"),
            BM,
            PERCENT_CELLS,
            (PERCENT_CELLS,),
            Decimal(100),
        ),
        Analyte(BM_MRD_NGS, gettext_noop("BM MRD, NGS"), BM, FRACTION, (FRACTION,), Decimal(1)),
        Analyte(
            BM_CAR_COPIES,
            gettext_noop("BM CAR transgene copies"),
            BM,
            COPIES_PER_UG,
            (COPIES_PER_UG,),
        ),
        Analyte(
            PB_CAR_COPIES,
            gettext_noop("PB CAR transgene copies"),
            PB,
            COPIES_PER_UG,
            (COPIES_PER_UG,),
        ),
    )
}
ANALYTE_CHOICES = [(a.code, a.label) for a in ANALYTES.values()]


def to_canonical(analyte: str, value: Decimal, unit: str) -> Decimal:
    """Convert a value of `analyte` in `unit` to the analyte's canonical unit."""
    return ANALYTES[analyte].to_canonical(value, unit)


def bcell_count_from_percent(percent: Decimal, alc_cells_per_ul: Decimal) -> Decimal:
    """Absolute B-cell count (cells/µL) from a % of lymphocytes and an ALC of the same sample."""
    return percent / Decimal(100) * alc_cells_per_ul
