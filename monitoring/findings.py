"""What a rule yields: a finding with the evidence a clinician needs to review it independently.

A finding becomes at most one alert per (patient, infusion, rule). Its ``details`` are JSON-safe
(strings, numbers, booleans, None, lists and dicts) so that they can be stored as they are.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any

from monitoring.params import RuleParams
from monitoring.texts import (
    ADVISORY,
    APLASIA_NOT_REACHED,
    BCELL_COUNT_DUE,
    CAR_COPIES_LOST,
    EARLY_REGENERATION,
    LATE_RECOVERY,
    MRD_POSITIVE,
    RULE_TEXTS,
    english,
)
from monitoring.timeline import BCellSample, ResultPoint, Window

HIGH, WARNING, INFO, REMINDER = "high", "warning", "info", "reminder"
SEVERITIES = (HIGH, WARNING, INFO, REMINDER)

SEVERITY: dict[str, str] = {
    EARLY_REGENERATION: HIGH,
    LATE_RECOVERY: INFO,
    APLASIA_NOT_REACHED: WARNING,
    BCELL_COUNT_DUE: REMINDER,
    MRD_POSITIVE: INFO,
    CAR_COPIES_LOST: INFO,
}

# Evidence roles: why a result is shown with the finding.
APLASIA = "aplasia"  # the last undetectable count before regeneration
REGENERATION = "regeneration"  # the first detectable count after aplasia
CONFIRMATION = "confirmation"  # the repeat sample that confirmed it
COUNT = "count"  # a count that did not document aplasia
LAST_COUNT = "last_count"
MRD = "mrd_positive"
CAR_DETECTABLE = "car_detectable"  # the last detectable CAR copy result before the loss
CAR_LOSS = "car_loss"


@dataclass(frozen=True)
class Evidence:
    result_id: int
    analyte: str
    specimen: str
    day: int
    date: date
    value: Decimal | None
    unit: str
    qualifier: str
    role: str

    @classmethod
    def of(cls, result: ResultPoint, window: Window, role: str) -> Evidence:
        return cls(
            result_id=result.id,
            analyte=result.analyte,
            specimen=result.specimen,
            day=window.day_of(result.collected_on),
            date=result.collected_on,
            value=result.value,
            unit=result.unit,
            qualifier=result.qualifier,
            role=role,
        )


def sample_evidence(sample: BCellSample, window: Window, role: str) -> tuple[Evidence, ...]:
    """Every result of one B-cell sample (count, %, ALC) with the same role."""
    return tuple(Evidence.of(r, window, role) for r in sample.results)


@dataclass(frozen=True)
class Finding:
    rule: str
    infusion_id: int
    day: int
    severity: str
    title: str
    evidence: tuple[Evidence, ...]
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> tuple[int, str]:
        """The identity of the alert this finding becomes (per patient)."""
        return (self.infusion_id, self.rule)


def make_finding(
    *,
    rule: str,
    window: Window,
    day: int,
    evidence: Iterable[Evidence],
    parameters: dict[str, Any],
    params: RuleParams,
    facts: dict[str, Any] | None = None,
) -> Finding:
    """Assemble a finding with its texts, the parameters it used and the study finding.

    ``parameters`` are the rule's own parameter values (JSON-safe); ``facts`` are the rule's
    observations (days, counts) that also fill the text's placeholders.
    """
    facts = dict(facts or {})
    texts = RULE_TEXTS[rule]
    placeholders = {**parameters, **facts, "day": day}
    details: dict[str, Any] = {
        "date": window.date_of(day).isoformat(),
        "infusion_number": window.infusion.number,
        "infusion_date": window.start.isoformat(),
        **facts,
        "parameters": {"version": params.version, **parameters},
        # Stored in English whatever language is active: pages translate them when shown.
        "recommendation": english(texts.recommendation).format(**placeholders),
        "study_finding": english(texts.study_finding),
        "advisory": english(ADVISORY),
    }
    return Finding(
        rule=rule,
        infusion_id=window.infusion_id,
        day=day,
        severity=SEVERITY[rule],
        title=english(texts.title),
        evidence=tuple(evidence),
        details=details,
    )
