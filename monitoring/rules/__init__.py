"""The rules: pure functions ``(timeline, params, *, as_of) -> list[Finding]``.

``RULES`` lists them in the order findings are presented: the relapse signal first, then what it
depends on, then the findings that the study found not associated with relapse.
"""

from datetime import date
from typing import Protocol

from monitoring.findings import Finding
from monitoring.params import RuleParams
from monitoring.rules.bcell import (
    aplasia_not_reached,
    bcell_count_due,
    early_regeneration,
    find_regeneration,
    late_recovery,
)
from monitoring.rules.marrow import car_copies_lost, mrd_positive
from monitoring.texts import (
    APLASIA_NOT_REACHED,
    BCELL_COUNT_DUE,
    CAR_COPIES_LOST,
    EARLY_REGENERATION,
    LATE_RECOVERY,
    MRD_POSITIVE,
)
from monitoring.timeline import Timeline


class Rule(Protocol):
    def __call__(
        self, timeline: Timeline, params: RuleParams, *, as_of: date | None = None
    ) -> list[Finding]: ...


RULES: tuple[tuple[str, Rule], ...] = (
    (EARLY_REGENERATION, early_regeneration),
    (APLASIA_NOT_REACHED, aplasia_not_reached),
    (BCELL_COUNT_DUE, bcell_count_due),
    (LATE_RECOVERY, late_recovery),
    (MRD_POSITIVE, mrd_positive),
    (CAR_COPIES_LOST, car_copies_lost),
)
RULE_NAMES = tuple(name for name, _ in RULES)

__all__ = [
    "RULES",
    "RULE_NAMES",
    "Rule",
    "aplasia_not_reached",
    "bcell_count_due",
    "car_copies_lost",
    "early_regeneration",
    "find_regeneration",
    "late_recovery",
    "mrd_positive",
]
