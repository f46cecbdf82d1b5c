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

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from django.utils import formats
from django.utils.translation import gettext

from patients import units
from patients.days import clinical_day

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
                        gettext(
                            "%(value)s is impossible for %(analyte)s (the limit is %(limit)s): "
                            "check the value and its unit."
                        )
                        % {
                            "value": _show(analyte, value),
                            "analyte": label,
                            "limit": _show(analyte, hard),
                        },
                    )
                )
                continue
            if value > soft:
                findings.append(
                    PlausibilityFinding(
                        analyte,
                        SOFT,
                        "above_soft_limit",
                        gettext(
                            "%(value)s is unusually high for %(analyte)s (above %(limit)s): "
                            "check the value and its unit."
                        )
                        % {
                            "value": _show(analyte, value),
                            "analyte": label,
                            "limit": _show(analyte, soft),
                        },
                    )
                )
        before = previous.get(analyte)
        if before is not None and before > 0 and value > 0:
            factor = limits.unit_slip_factor
            if value >= before * factor or value * factor <= before:
                ratio = value / before
                if ratio >= 1:
                    text = gettext(
                        "%(value)s is %(factor)s times the patient's previous %(analyte)s "
                        "(%(before)s): is the unit right?"
                    )
                    factor = f"{ratio:.0f}"
                else:
                    text = gettext(
                        "%(value)s is 1/%(factor)s of the patient's previous %(analyte)s "
                        "(%(before)s): is the unit right?"
                    )
                    factor = f"{(1 / ratio):.0f}"
                findings.append(
                    PlausibilityFinding(
                        analyte,
                        SOFT,
                        "unit_slip",
                        text
                        % {
                            "value": _show(analyte, value),
                            "factor": factor,
                            "analyte": label,
                            "before": _show(analyte, before),
                        },
                    )
                )
    bcells, alc = values.get(units.PB_BCELL_ABS), values.get(units.ALC)
    if bcells is not None and alc is not None and bcells > alc:
        findings.append(
            PlausibilityFinding(
                units.PB_BCELL_ABS,
                SOFT,
                "bcells_above_alc",
                gettext(
                    "B cells (%(bcells)s) are more than all lymphocytes of the same sample "
                    "(%(alc)s): B cells are lymphocytes; check both values and their units."
                )
                % {"bcells": _show(units.PB_BCELL_ABS, bcells), "alc": _show(units.ALC, alc)},
            )
        )
    return findings


# --- dates (issue 23): a date is checked as carefully as a number --------------------------------
#
# A sample's collection date (the center's local calendar date) needs a confirmation when it is
#   - more than BASELINE_WINDOW_DAYS days before the patient's first infusion (day −31 or
#     earlier): the usual baseline samples (screening, lymphodepletion on days −7 to −2) fall
#     within the 30 days before it and need no tick (a tick asked for every routine baseline is
#     soon given without looking); a sample months before the infusion is rather a date read in
#     the wrong order (02.12.2026 as 12 Feb 2026, day −263) that would hide a day-28 count
#     among the baseline values, which never raise an alert;
#   - more than FAR_BEFORE_LATEST_DAYS days before the patient's latest sample already recorded
#     (results arrive late by days or weeks; two months before what is already recorded is
#     rather a date read in the wrong order than a late result),
# and is refused when it is after today (a sample cannot be collected in the future).
BASELINE_WINDOW_DAYS = 30
FAR_BEFORE_LATEST_DAYS = 60


def _date_text(on: date) -> str:
    return formats.date_format(on, "DATE_FORMAT")


def _day_text(on: date, infusion_dates: Sequence[date]) -> str:
    """ "day −263 after the infusion of 2 Nov 2026" (the infusion the day counts from)."""
    day = clinical_day(on, list(infusion_dates))
    if day is None:
        return gettext("no infusion is recorded yet")
    start = infusion_dates[0] if day.is_baseline else infusion_dates[day.infusion_number - 1]
    return gettext("day %(day)s after the infusion of %(infusion)s") % {
        "day": f"{day.day}".replace("-", "\u2212"),
        "infusion": _date_text(start),
    }


def _date_problems(
    on: date, infusion_dates: Sequence[date], latest: date | None, today: date
) -> list[tuple[str, str, str]]:
    """(level, check, reason) of each rule `on` breaks."""
    found = []
    if on > today:
        found.append((HARD, "after_today", gettext("The collection date is after today.")))
    if infusion_dates and (infusion_dates[0] - on).days > BASELINE_WINDOW_DAYS:
        found.append(
            (
                SOFT,
                "before_first_infusion",
                gettext("The collection date is more than %(days)s days before the first infusion.")
                % {"days": BASELINE_WINDOW_DAYS},
            )
        )
    if latest is not None and (latest - on).days > FAR_BEFORE_LATEST_DAYS:
        found.append(
            (
                SOFT,
                "out_of_order",
                gettext(
                    "The collection date is %(days)s days before the patient's latest sample "
                    "(%(latest)s)."
                )
                % {"days": (latest - on).days, "latest": _date_text(latest)},
            )
        )
    return found


def check_sample_date(
    on: date,
    *,
    infusion_dates: Sequence[date],
    sample_dates: Sequence[date] = (),
    today: date,
) -> list[PlausibilityFinding]:
    """Findings for a sample's collection date (the center's local date): `infusion_dates` in
    order, `sample_dates` the local dates of the patient's samples already recorded, `today` the
    center's local today. The findings' analyte is "" (the sample as a whole); each message says
    the date as read, its day after the infusion and what to check."""
    infusion_dates = sorted(infusion_dates)
    latest = max((d for d in sample_dates if d != on), default=None)
    problems = _date_problems(on, infusion_dates, latest, today)
    if not problems:
        return []
    read = gettext("Read as %(date)s, %(day)s;") % {
        "date": _date_text(on),
        "day": _day_text(on, infusion_dates),
    }
    hint = gettext("check the date against the report.")
    if on.day <= 12 and on.day != on.month:
        swapped = date(on.year, on.day, on.month)
        if not _date_problems(swapped, infusion_dates, latest, today):
            hint = gettext(
                "if you meant %(other)s, check the order of day and month in the date field."
            ) % {"other": _date_text(swapped)}
    return [
        PlausibilityFinding("", level, check, f"{reason} {read} {hint}")
        for level, check, reason in problems
    ]
