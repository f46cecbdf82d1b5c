"""Peripheral-blood B-cell rules: the study's finding and the monitoring it depends on.

Relapse after CD19 CAR-T was strongly associated with PB B cells reappearing within 45 days of the
infusion, after B-cell aplasia (CLINICAL.md section 1). These rules look for that regeneration, for
the late recovery that was not associated with relapse, for aplasia that was never documented, and
for gaps in the counts that would hide an early regeneration.

Each rule is a pure function of one patient's timeline and the parameters; nothing dated after
``as_of`` is considered. Only ``bcell_count_due`` needs ``as_of`` as "today".
"""

from __future__ import annotations

from datetime import date

from monitoring.findings import (
    APLASIA,
    CONFIRMATION,
    COUNT,
    LAST_COUNT,
    REGENERATION,
    Finding,
    make_finding,
    sample_evidence,
)
from monitoring.params import RuleParams, format_decimal
from monitoring.rules.recovery import (
    Regeneration,
    count_status,
    find_regeneration,
    is_detectable,
    is_early,
)
from monitoring.texts import (
    APLASIA_NOT_REACHED,
    BCELL_COUNT_DUE,
    EARLY_REGENERATION,
    LATE_RECOVERY,
)
from monitoring.timeline import Timeline, Window

__all__ = [
    "Regeneration",
    "aplasia_not_reached",
    "bcell_count_due",
    "early_regeneration",
    "find_regeneration",
    "late_recovery",
]


def _regeneration_finding(
    rule: str, window: Window, params: RuleParams, regeneration: Regeneration
) -> Finding:
    onset, confirmation = regeneration.onset, regeneration.confirmation
    count = onset.count()
    evidence = sample_evidence(regeneration.last_aplasia, window, APLASIA)
    evidence += sample_evidence(onset, window, REGENERATION)
    if confirmation is not None:
        evidence += sample_evidence(confirmation, window, CONFIRMATION)
    return make_finding(
        rule=rule,
        window=window,
        day=regeneration.alert_sample.day,
        evidence=evidence,
        parameters={"window_days": params.window_days, **params.bcell_definition()},
        params=params,
        facts={
            "regeneration_day": onset.day,
            "regeneration_date": onset.collected_on.isoformat(),
            "regeneration_count_cells_per_ul": None if count is None else format_decimal(count),
            "confirmation_day": None if confirmation is None else confirmation.day,
            "aplasia_day": regeneration.last_aplasia.day,
            "first_aplasia_day": regeneration.first_aplasia.day,
            "definition": params.definition_text(),
        },
    )


def early_regeneration(
    timeline: Timeline, params: RuleParams, *, as_of: date | None = None
) -> list[Finding]:
    """Detectable PB B cells on day 1..window_days after aplasia: the relapse signal (high)."""
    findings = []
    for window in timeline.until(as_of).windows():
        regeneration = find_regeneration(window, params)
        if regeneration and is_early(regeneration, params):
            findings.append(_regeneration_finding(EARLY_REGENERATION, window, params, regeneration))
    return findings


def late_recovery(
    timeline: Timeline, params: RuleParams, *, as_of: date | None = None
) -> list[Finding]:
    """The first regeneration after aplasia falls after the window: not associated with relapse."""
    findings = []
    for window in timeline.until(as_of).windows():
        regeneration = find_regeneration(window, params)
        if regeneration and not is_early(regeneration, params):
            findings.append(_regeneration_finding(LATE_RECOVERY, window, params, regeneration))
    return findings


def aplasia_not_reached(
    timeline: Timeline, params: RuleParams, *, as_of: date | None = None
) -> list[Finding]:
    """No undetectable PB B-cell count by day ``aplasia_by_day`` (warning).

    Every patient in CR in the study had B-cell aplasia; without it documented, early regeneration
    cannot be recognised. The rule waits until that day has passed: as of ``as_of``, or without a
    clock, until something later than that day is recorded (a result, an assessment, an event or
    the next infusion). A window that the next infusion closed before that day is not judged.
    """
    known = timeline.until(as_of)
    horizon = as_of or known.last_known_date()
    by_day = params.aplasia_by_day
    findings = []
    for window in known.windows():
        if horizon is None or window.day_of(horizon) <= by_day or not window.covers_day(by_day):
            continue
        counts = [s for s in window.post_infusion_bcell_samples() if s.day <= by_day]
        if any(is_detectable(s, params) is False for s in counts):
            continue
        evidence = tuple(e for s in counts for e in sample_evidence(s, window, COUNT))
        findings.append(
            make_finding(
                rule=APLASIA_NOT_REACHED,
                window=window,
                day=by_day,
                evidence=evidence,
                parameters={"aplasia_by_day": by_day, **params.bcell_definition()},
                params=params,
                facts={"counts_by_then": len(counts), "definition": params.definition_text()},
            )
        )
    return findings


def bcell_count_due(
    timeline: Timeline, params: RuleParams, *, as_of: date | None = None
) -> list[Finding]:
    """Inside the window the last PB B-cell count is older than ``count_due_days`` (reminder).

    Time-based: it needs ``as_of`` ("today" of the periodic sweep) and yields nothing without it.
    Only the current infusion's window is due; once its regeneration window has passed, or a
    regeneration has been found, counts are no longer needed for the early-regeneration rule.
    With no count since the infusion, the interval runs from day 0.
    """
    if as_of is None:
        return []
    windows = timeline.until(as_of).windows()
    if not windows:
        return []
    window = windows[-1]  # later infusions are not known yet as of as_of
    status = count_status(window, params, as_of=as_of)
    if not status.due:
        return []
    last, today, days_since_last_count = status.last, status.day, status.days_since_last_count
    return [
        make_finding(
            rule=BCELL_COUNT_DUE,
            window=window,
            day=today,
            evidence=sample_evidence(last, window, LAST_COUNT) if last else (),
            parameters={
                "count_due_days": params.count_due_days,
                "window_days": params.window_days,
            },
            params=params,
            facts={
                "as_of": as_of.isoformat(),
                "last_count_day": last.day if last else None,
                "days_since_last_count": days_since_last_count,
            },
        )
    ]
