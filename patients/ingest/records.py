"""The records an import brings, already parsed from their format, each with its place.

A place names where the record came from in the sender's own terms (`samples[3]`, `labs row 12`,
`entry[5]`), so that every problem can be reported where the sender can find it. Field names are
the models' own, so a model's field error maps to the record's field.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any


@dataclass(frozen=True)
class Problem:
    """One thing wrong with an import: where, which field, the value given, and why."""

    place: str
    field: str
    value: Any
    message: str
    # The refusal's code where it has one (`plausibility_checks.UNCONFIRMED`: the same value
    # passes once confirmed), for a door that reacts to it (the sample form's confirm box).
    code: str = ""

    @property
    def key(self) -> str:
        return f"{self.place}.{self.field}" if self.field else self.place


def problems_by_key(problems: list[Problem]) -> dict[str, list[str]]:
    """{"samples[1].values[0].unit": [message, ...]} in the order the places were given."""
    out: dict[str, list[str]] = {}
    for problem in problems:
        messages = out.setdefault(problem.key, [])
        if problem.message not in messages:
            messages.append(problem.message)
    return out


@dataclass
class PatientRecord:
    place: str
    study_id: str
    center_code: str = ""  # empty: the importing user's center
    sex: str = "U"
    date_of_birth: date | None = None
    mrn: str = ""
    full_name: str = ""
    diagnosis: str = "R/R B-ALL"
    ph_positive: bool | None = None
    is_synthetic: bool = False


@dataclass
class InfusionRecord:
    place: str
    study_id: str
    infusion_date: date | None
    product: str
    infusion_number: int | None = None  # None: numbered by date after the stored ones
    target_antigen: str = "CD19"
    dose_cells_per_kg: Decimal | None = None
    lymphodepletion: str = ""


@dataclass
class LabValueRecord:
    place: str
    analyte: str
    value: Decimal | None
    unit: str
    qualifier: str = ""
    method: str = ""
    specimen: str = ""  # empty: the analyte's own
    # The sender has seen a plausibility warning for this value and confirms it (CLINICAL.md §2).
    confirmed: bool = False


@dataclass
class SampleRecord:
    """One blood or marrow draw: several analytes collected at one time."""

    place: str
    study_id: str
    collected_at: datetime | None
    values: list[LabValueRecord] = field(default_factory=list)
    # The sender confirms the collection date after a warning (before the first infusion, far
    # before the latest sample); a sample whose every value is `confirmed` confirms it too.
    confirmed: bool = False

    @property
    def date_confirmed(self) -> bool:
        return self.confirmed or (bool(self.values) and all(v.confirmed for v in self.values))


@dataclass
class ResponseRecord:
    place: str
    study_id: str
    assessed_on: date | None
    response: str
    mrd_status: str = "unknown"
    notes: str = ""


@dataclass
class EventRecord:
    place: str
    study_id: str
    kind: str
    event_date: date | None
    relapse_cd19: str = ""
    relapse_site: str = ""
    death_cause: str = ""
    notes: str = ""


@dataclass
class TherapyRecord:
    place: str
    study_id: str
    start_date: date | None
    category: str
    agent: str
    agent_detail: str = ""
    notes: str = ""


@dataclass
class Batch:
    patients: list[PatientRecord] = field(default_factory=list)
    infusions: list[InfusionRecord] = field(default_factory=list)
    samples: list[SampleRecord] = field(default_factory=list)
    responses: list[ResponseRecord] = field(default_factory=list)
    events: list[EventRecord] = field(default_factory=list)
    therapies: list[TherapyRecord] = field(default_factory=list)
    # How this format's sender confirms a value refused as unusual (a soft plausibility limit),
    # said in the refusal; empty: the generic "If it is correct, confirm it."
    confirm_hint: str = ""

    def study_ids(self) -> set[str]:
        return {
            r.study_id
            for records in (
                self.patients,
                self.infusions,
                self.samples,
                self.responses,
                self.events,
                self.therapies,
            )
            for r in records
        }

    def is_empty(self) -> bool:
        return not self.study_ids()
