"""Check a batch and, if nothing is wrong, write it in bulk with its audit history.

`batch_ingest` must run inside the caller's transaction: it locks the patients the batch names
(one writer per patient, in pk order), loads what the checks compare with, checks every record
and writes only when no problem was found. The alerts are the caller's business (a floor up, in
`imports.services`), evaluated once per patient after everything is written, so no finding is
ever raised from a half-written course.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from django.db import IntegrityError, transaction
from simple_history.utils import bulk_create_with_history

from patients.ingest.checks import Plan, batch_check
from patients.ingest.context import Scope, context_load
from patients.ingest.records import Batch, Problem
from patients.models import (
    ClinicalEvent,
    Infusion,
    LabResult,
    Patient,
    PreemptiveTherapy,
    ResponseAssessment,
)

BATCH_SIZE = 2000
Progress = Callable[[str, int, int], None]  # (phase, done, total)


@dataclass
class IngestResult:
    plan: Plan
    problems: list[Problem]
    written: bool

    @property
    def affected_patients(self) -> list[Patient]:
        """Every patient that got a record, in pk order (the lock order)."""
        touched = {
            r.patient.study_id
            for rows in (
                self.plan.infusions,
                self.plan.labs,
                self.plan.responses,
                self.plan.events,
                self.plan.therapies,
            )
            for r in rows
        } | {p.study_id for p in self.plan.new_patients}
        return sorted((self.plan.patients[s] for s in touched), key=lambda p: p.pk)


def batch_preview(batch: Batch, scope: Scope) -> IngestResult:
    """Check without writing or locking (a preview before the user confirms)."""
    plan, problems = batch_check(batch, context_load(batch, scope, lock=False))
    return IngestResult(plan, problems, written=False)


def batch_ingest(batch: Batch, scope: Scope, *, progress: Progress | None = None) -> IngestResult:
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("batch_ingest runs inside the caller's transaction")
    context = context_load(batch, scope, lock=True)
    if progress is not None:
        progress("checking", 0, len(batch.samples))
    plan, problems = batch_check(batch, context)
    if problems:
        return IngestResult(plan, problems, written=False)
    try:
        with transaction.atomic():
            _write(plan, scope, progress)
    except IntegrityError as error:  # a concurrent writer got there first (e.g. a new study ID)
        return IngestResult(
            plan,
            [Problem("", "", None, f"This import conflicts with data saved meanwhile: {error}")],
            written=False,
        )
    return IngestResult(plan, problems, written=True)


def _write(plan: Plan, scope: Scope, progress: Progress | None) -> None:
    user = scope.user if scope.user is not None and scope.user.is_authenticated else None
    steps = [
        (Patient, plan.new_patients),
        (Infusion, plan.infusions),
        (LabResult, plan.labs),
        (ResponseAssessment, plan.responses),
        (ClinicalEvent, plan.events),
        (PreemptiveTherapy, plan.therapies),
    ]
    total = sum(len(rows) for _model, rows in steps)
    done = 0
    if progress is not None:
        progress("writing", 0, total)
    for model, rows in steps:
        for start in range(0, len(rows), BATCH_SIZE):
            chunk = rows[start : start + BATCH_SIZE]
            bulk_create_with_history(chunk, model, batch_size=BATCH_SIZE, default_user=user)
            done += len(chunk)
            if progress is not None:
                progress("writing", done, total)
