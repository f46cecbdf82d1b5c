"""The one import path: patients' bulk ingest, then each affected patient's alerts once.

Everything (the API's lab batches, spreadsheets, FHIR bundles, the demo loader) comes here as a
`patients.ingest.records.Batch`. One transaction: the patients the batch names are locked, every
record is checked with the models' own validation, the records are written in bulk with their
audit history, the patients it created get a responsible clinician (its sender, or for a system
sender the center's intake team), and only then are each affected patient's rules evaluated,
once. So no transient finding (aplasia "not reached" between an infusion and its counts) is ever
raised. What the import raises is news unless the sender declared it history (`history=True`:
the upload page's choice, the API's `"history": true`, a feed's setting) or the course had
already answered it (`monitoring.news`, CLINICAL.md section 4).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date

from django.db import transaction

from carttrack.shared_reads import reads_shared
from monitoring.models import ACTIVE_STATUSES
from monitoring.services import responsible_assign
from monitoring.sweep import alerts_sync_many
from patients.days import clinical_day, local_date
from patients.ingest.context import Scope
from patients.ingest.plan import Plan
from patients.ingest.records import Batch, Problem, problems_by_key
from patients.ingest.write import batch_ingest, batch_preview
from patients.models import Center, Infusion
from patients.selectors import patients_visible_to
from patients.signals import records_changed_send

Progress = Callable[[str, int, int], None]


REFUSED = "Nothing was saved: see errors for each problem."


@dataclass
class ImportOutcome:
    problems: list[Problem]
    counts: dict[str, int] = field(default_factory=dict)
    lab_result_ids: list[int] = field(default_factory=list)
    alerts: dict[str, int] = field(default_factory=dict)
    samples: list = field(default_factory=list)  # (SampleRecord, Patient, [LabResult])

    @property
    def ok(self) -> bool:
        return not self.problems

    def as_json(self) -> dict:
        """The answer of the API and of a job: on refusal the API's one error shape
        (patients.api.errors) with `saved` 0; else what was stored, each sample echoed."""
        if self.problems:
            return {"detail": REFUSED, "errors": problems_by_key(self.problems), "saved": 0}
        return {
            "saved": len(self.lab_result_ids),
            "ids": self.lab_result_ids,
            "samples": stored_samples(self.samples),
            "created": self.counts,
            "alerts": self.alerts,
        }


def stored_samples(samples: list) -> list[dict]:
    """Each stored sample's time in its center's zone, its clinical date, infusion number and
    day, so a sender can check how a time without an offset was read."""
    patient_ids = {patient.pk for _sample, patient, _labs in samples}
    infusions: dict[int, list[date]] = defaultdict(list)
    for pid, when in (
        Infusion.objects.filter(patient_id__in=patient_ids)
        .order_by("infusion_date")
        .values_list("patient_id", "infusion_date")
    ):
        infusions[pid].append(when)
    out = []
    for sample, patient, labs in samples:
        tz = patient.center.tzinfo
        on = local_date(sample.collected_at, tz)
        day = clinical_day(on, infusions[patient.pk])
        out.append(
            {
                "study_id": patient.study_id,
                "collected_at": sample.collected_at.astimezone(tz).isoformat(),
                "time_zone": patient.center.time_zone,
                "collected_on": on.isoformat(),
                "infusion_number": day.infusion_number if day else None,
                "day": day.day if day else None,
                "ids": [lab.pk for lab in labs],
            }
        )
    return out


def import_scope(user) -> Scope:
    """The patients `user` may add records to, and where they may create patients: their own
    center (a superuser: any center, named by code)."""
    profile = getattr(user, "profile", None)
    center = profile.center if profile is not None else None
    centers = {center.code: center} if center is not None else {}
    if user.is_superuser:
        centers = {c.code: c for c in Center.objects.all()}
    patients = patients_visible_to(user)
    if not user.is_superuser and center is not None:
        patients = patients.filter(center=center)  # add to one's own center only
    return Scope(
        user=user,
        patients=patients,
        centers=centers,
        default_center=center,
        may_add_patients=user.has_perm("patients.add_patient"),
    )


def records_import(
    *,
    batch: Batch,
    scope: Scope,
    notify: bool = True,
    history: bool = False,
    history_is_news: bool = False,
    progress: Progress | None = None,
) -> ImportOutcome:
    """Check and write `batch`, then evaluate the affected patients' alerts once, in bulk.

    All or nothing: with any problem nothing is written and every problem is returned with its
    place. `history`: the sender declares the batch a backfill of past records, so what it
    raises is history (recorded, never e-mailed); `history_is_news` raises every finding as
    current (the synthetic demo, shown as a live worklist), `notify=False` e-mails nobody.
    """
    with transaction.atomic():
        result = batch_ingest(batch, scope, progress=progress)
        if not result.written:
            return ImportOutcome(result.problems)
        responsible_assign(patients=result.plan.new_patients, sender=scope.user)
        patients = result.affected_patients
        if progress is not None:
            progress("alerts", 0, len(patients))
        # The patients' rows are locked by batch_ingest (pk order) until this transaction ends.
        # Everything written: the alert evaluation and the announcement's receivers share what
        # they read of the patients (carttrack.shared_reads).
        with reads_shared():
            changes = alerts_sync_many(
                patient_ids=[p.pk for p in patients],
                notify=notify,
                history=history,
                history_is_news=history_is_news,
                progress=(
                    (lambda done, total: progress("alerts", done, total)) if progress else None
                ),
            )
            # What else is derived from the records (the stored analysis rows) is kept by the
            # receivers of the one announcement every writer makes, in this transaction.
            records_changed_send(
                sender=Batch, patient_ids=[p.pk for p in patients], alerts_evaluated=True
            )
        raised = historical = 0
        for change in changes:
            if change.alert.status in ACTIVE_STATUSES:  # raised or re-opened, or basis updated
                raised += 1
                historical += change.alert.historical
    return ImportOutcome(
        [],
        counts=result.plan.counts(),
        lab_result_ids=[lab.pk for lab in result.plan.labs],
        alerts={"active": raised, "historical": historical, "news": raised - historical},
        samples=result.plan.samples,
    )


def records_preview(*, batch: Batch, scope: Scope) -> tuple[Plan, list[Problem]]:
    """What `records_import` would create and every problem, without writing anything."""
    result = batch_preview(batch, scope)
    return result.plan, result.problems
