"""What checking a batch builds: the plan of what a valid batch creates, and its problems.

`Collector` gathers every problem with its place (the sender's own terms), keeping a refusal's
code (`plausibility_checks.UNCONFIRMED`: a form asks for a confirmation on it) and saying how
this format's sender confirms an unusual value (`Batch.confirm_hint`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.core.exceptions import ValidationError
from django.utils.translation import gettext as _

from patients import plausibility_checks
from patients.ingest.records import Problem, SampleRecord
from patients.models import (
    ClinicalEvent,
    Infusion,
    LabResult,
    Patient,
    PreemptiveTherapy,
    ResponseAssessment,
)
from patients.validation import Errors


@dataclass
class Plan:
    """What a valid batch creates; `patients` is every patient it touches, by study ID."""

    patients: dict[str, Patient] = field(default_factory=dict)
    new_patients: list[Patient] = field(default_factory=list)
    infusions: list[Infusion] = field(default_factory=list)
    labs: list[LabResult] = field(default_factory=list)
    responses: list[ResponseAssessment] = field(default_factory=list)
    events: list[ClinicalEvent] = field(default_factory=list)
    therapies: list[PreemptiveTherapy] = field(default_factory=list)
    # Each sample with its patient and its results, in the batch's order (the API echoes them).
    samples: list[tuple[SampleRecord, Patient, list[LabResult]]] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        return {
            "patients": len(self.new_patients),
            "infusions": len(self.infusions),
            "lab_results": len(self.labs),
            "samples": len({(lab.patient.study_id, lab.collected_at) for lab in self.labs}),
            "responses": len(self.responses),
            "events": len(self.events),
            "therapies": len(self.therapies),
        }


class Collector:
    """The problems of a batch, each with its place; nothing stops at the first."""

    def __init__(self, confirm_hint: str = "") -> None:
        self.problems: list[Problem] = []
        self.confirm_hint = confirm_hint

    def add(self, place: str, field_name: str, value: Any, message) -> None:
        code = ""
        if isinstance(message, ValidationError):
            code = message.code or ""
            text = message.message % message.params if message.params else message.message
            if message.code == plausibility_checks.UNCONFIRMED and self.confirm_hint:
                text = f"{message.params['finding']} {self.confirm_hint}"
            message = text
        self.problems.append(Problem(place, field_name, value, str(message), code))

    def add_errors(self, place: str, record: Any, errors: Errors, *, sample_place: str = ""):
        for key, messages in errors.items():
            where, name = place, "" if key == "__all__" else key
            if name == "collected_at" and sample_place:
                where = sample_place  # the sample's time, not the value's
            value = getattr(record, name, None) if name else None
            for message in messages:
                self.add(where, name, value, message)


def plan_patient(record, plan: Plan, out: Collector) -> Patient | None:
    """The patient a record names, if the batch may add to it (else the problem is said)."""
    patient = plan.patients.get(record.study_id)
    if patient is None:
        out.add(
            record.place,
            "study_id",
            record.study_id,
            _("No patient %(study_id)s that you may enter data for.")
            % {"study_id": record.study_id},
        )
    return patient
