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

import psycopg
from django.db import IntegrityError, connection, transaction
from django.utils import timezone
from django.utils.translation import gettext
from simple_history.utils import bulk_create_with_history

from patients.ingest.checks import batch_check
from patients.ingest.context import Scope, context_load
from patients.ingest.plan import Plan
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
    except (IntegrityError, psycopg.IntegrityError) as error:  # a concurrent writer was first
        return IngestResult(
            plan,
            [
                Problem(
                    "",
                    "",
                    None,
                    gettext("This import conflicts with data saved meanwhile: %(error)s")
                    % {"error": error},
                )
            ],
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
        # Most of any import's rows; COPY on PostgreSQL, the generic bulk path on the embedded
        # SQLite default (bin/run without DATABASE_URL).
        if model is LabResult and connection.vendor == "postgresql":
            lab_results_copy(rows, user=user)
            done += len(rows)
            if progress is not None:
                progress("writing", done, total)
            continue
        for start in range(0, len(rows), BATCH_SIZE):
            chunk = rows[start : start + BATCH_SIZE]
            bulk_create_with_history(chunk, model, batch_size=BATCH_SIZE, default_user=user)
            done += len(chunk)
            if progress is not None:
                progress("writing", done, total)


def lab_results_copy(rows: list[LabResult], *, user) -> None:
    """Write checked lab results and their audit rows with PostgreSQL's COPY: what
    `bulk_create_with_history` writes (the same columns, one "+" history row per result naming
    `user`), without building an INSERT of every value in Python. Ids come from the table's own
    sequence first, so the caller's instances get their pk as with bulk_create. The checks have
    run (patients.ingest.checks); the database's constraints still hold (a violation raises and
    the caller's transaction rolls back)."""
    now = timezone.now()
    table = LabResult._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT nextval(pg_get_serial_sequence(%s, 'id')) FROM generate_series(1, %s)",
            [table, len(rows)],
        )
        ids = [pk for (pk,) in cursor.fetchall()]
    for result, pk in zip(rows, ids, strict=True):
        result.pk = pk
        # A patient created by this import has its pk now: assigning the instance again sets
        # patient_id and keeps it cached (setting patient_id alone would drop the cache).
        result.patient = result.patient
        result.entered_at = now  # auto_now_add, as save() and bulk_create set it
        result._state.adding, result._state.db = False, connection.alias
    fields = [f for f in LabResult._meta.concrete_fields]
    history = LabResult.history.model
    tracked = [f.attname for f in history.tracked_fields]
    user_id = user.pk if user is not None else None
    raw = connection.connection  # the transaction's own psycopg connection
    with raw.cursor() as cursor:
        columns = ", ".join(f'"{f.column}"' for f in fields)
        with cursor.copy(f'COPY "{table}" ({columns}) FROM STDIN') as copy:
            for result in rows:
                copy.write_row([getattr(result, f.attname) for f in fields])
        history_columns = ", ".join(
            f'"{c}"'
            for c in [
                *(history._meta.get_field(name).column for name in tracked),
                "history_date",
                "history_change_reason",
                "history_type",
                "history_user_id",
            ]
        )
        with cursor.copy(f'COPY "{history._meta.db_table}" ({history_columns}) FROM STDIN') as copy:
            for result in rows:
                copy.write_row(
                    [*(getattr(result, name) for name in tracked), now, "", "+", user_id]
                )
