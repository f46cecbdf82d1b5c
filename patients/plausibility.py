"""Plausibility of lab values (CLINICAL.md section 2): a tenfold or thousandfold slip must not
enter silently.

Pure: plain values in, findings out; no database, no clock. The pages, the admin and the API
call it through `patients.plausibility_checks.sample_plausibility` (which reads the center's
limits and the patient's previous values); a bulk import calls it through `sample_findings`
for many rows, with the limits read once and the previous values kept in memory.

    check_sample(
        values: Mapping[str, Decimal | None],   # analyte code -> value in its CANONICAL unit
                                                #   (patients.units: cells/µL for counts,
                                                #   copies/µg for CAR copies); None = qualifier
        limits: Limits,                          # the center's current limits (Limits() = defaults)
        previous: Mapping[str, Decimal] = {},    # analyte code -> the patient's most recent
                                                #   NON-ZERO canonical value collected before this
                                                #   sample (leave an analyte out if there is none)
    ) -> list[PlausibilityFinding]

Each finding names the analyte it is attached to, whether it is "hard" (refuse: the value is
impossible) or "soft" (keep only after a person confirms it, or an API caller sends
"confirmed": true), and a message for the clinician. An empty list means every value is plausible.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal

from patients import units

HARD = "hard"
SOFT = "soft"


@dataclass(frozen=True)
class Limits:
    """Soft (confirm) and hard (refuse) upper limits, in canonical units; CLINICAL.md defaults."""

    bcell_abs_soft: Decimal = Decimal(2_000)  # cells/µL
    bcell_abs_hard: Decimal = Decimal(100_000)  # cells/µL
    alc_soft: Decimal = Decimal(50_000)  # cells/µL (50 ×10⁹/L)
    alc_hard: Decimal = Decimal(1_000_000)  # cells/µL (1,000 ×10⁹/L)
    car_copies_soft: Decimal = Decimal(1_000_000)  # copies/µg gDNA
    car_copies_hard: Decimal = Decimal(100_000_000)  # copies/µg gDNA
    unit_slip_factor: Decimal = Decimal(1_000)  # ≥ this × or ≤ 1/this × the previous value
    version: str = "default"


@dataclass(frozen=True)
class PlausibilityFinding:
    analyte: str
    level: str  # HARD or SOFT
    check: str  # "above_soft_limit", "above_hard_limit", "bcells_above_alc", "unit_slip"
    message: str

    @property
    def is_hard(self) -> bool:
        return self.level == HARD


def _limits_for(analyte: str, limits: Limits) -> tuple[Decimal, Decimal] | None:
    if analyte == units.PB_BCELL_ABS:
        return limits.bcell_abs_soft, limits.bcell_abs_hard
    if analyte == units.ALC:
        return limits.alc_soft, limits.alc_hard
    if analyte in (units.BM_CAR_COPIES, units.PB_CAR_COPIES):
        return limits.car_copies_soft, limits.car_copies_hard
    return None


def _show(analyte: str, value: Decimal) -> str:
    definition = units.ANALYTES[analyte]
    text = f"{value.normalize():f}"
    label = units.UNIT_LABELS[definition.canonical_unit]
    if definition.canonical_unit == units.CELLS_PER_UL and value >= 1000:
        giga = value / 1000
        giga_text = f"{giga.normalize():f}"
        return f"{text} {label} ({giga_text} ×10⁹/L)"
    return f"{text} {label}"


def check_sample(
    values: Mapping[str, Decimal | None],
    limits: Limits,
    previous: Mapping[str, Decimal] | None = None,
) -> list[PlausibilityFinding]:
    """Findings for one sample's values (canonical units); see the module docstring."""
    previous = previous or {}
    findings: list[PlausibilityFinding] = []
    for analyte, value in values.items():
        if value is None or analyte not in units.ANALYTES:
            continue
        label = units.ANALYTES[analyte].label
        bounds = _limits_for(analyte, limits)
        if bounds is not None:
            soft, hard = bounds
            if value > hard:
                findings.append(
                    PlausibilityFinding(
                        analyte,
                        HARD,
                        "above_hard_limit",
                        f"{_show(analyte, value)} is impossible for {label} (the limit is "
                        f"{_show(analyte, hard)}): check the value and its unit.",
                    )
                )
                continue
            if value > soft:
                findings.append(
                    PlausibilityFinding(
                        analyte,
                        SOFT,
                        "above_soft_limit",
                        f"{_show(analyte, value)} is unusually high for {label} (above "
                        f"{_show(analyte, soft)}): check the value and its unit.",
                    )
                )
        before = previous.get(analyte)
        if before is not None and before > 0 and value > 0:
            factor = limits.unit_slip_factor
            if value >= before * factor or value * factor <= before:
                ratio = value / before
                how = f"{ratio:.0f} times" if ratio >= 1 else f"1/{(1 / ratio):.0f} of"
                findings.append(
                    PlausibilityFinding(
                        analyte,
                        SOFT,
                        "unit_slip",
                        f"{_show(analyte, value)} is {how} the patient's previous {label} "
                        f"({_show(analyte, before)}): is the unit right?",
                    )
                )
    bcells, alc = values.get(units.PB_BCELL_ABS), values.get(units.ALC)
    if bcells is not None and alc is not None and bcells > alc:
        findings.append(
            PlausibilityFinding(
                units.PB_BCELL_ABS,
                SOFT,
                "bcells_above_alc",
                f"B cells ({_show(units.PB_BCELL_ABS, bcells)}) are more than all lymphocytes "
                f"of the same sample ({_show(units.ALC, alc)}): B cells are lymphocytes; check "
                "both values and their units.",
            )
        )
    return findings
