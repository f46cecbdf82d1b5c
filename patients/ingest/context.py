"""What a batch is checked against, loaded in a few set-based queries (never one per row).

The patients the batch names (locked when writing), the records they already have that the
checks compare with (infusion dates, events, the stored results at the batch's collection times
for the duplicate and same-sample checks), study IDs in use (compared without regard to case),
and the centers. A collection time without a UTC offset is read here in the patient's center's
zone (`patients.days.at_local_time`). Plausibility checks read each center's limits once and a
patient's previous values from `previous_entry`, loaded on first use for the whole batch at once.
The queries are `patients.facts`'s, the same that load one record's facts for its `clean()`.
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal

from django.db.models import QuerySet

from patients import facts
from patients.days import LocalTimeError, at_local_time
from patients.ingest.records import Batch, Problem
from patients.models import (
    Center,
    ClinicalEvent,
    Infusion,
    LabResult,
    Patient,
    ResponseAssessment,
)
from patients.plausibility import Limits
from patients.validation import PatientFacts


@dataclass
class Scope:
    """Who imports, and into what: the patients they may add records to, and the centers where
    they may create patients (by code; `default_center` for records that name none)."""

    user: object
    patients: QuerySet
    centers: dict[str, Center] = field(default_factory=dict)
    default_center: Center | None = None
    may_add_patients: bool = True


@dataclass
class Context:
    scope: Scope
    existing: dict[str, Patient]  # study ID -> a patient in scope (locked when writing)
    # Lower-cased study IDs in use by another patient: True if in scope (another spelling of a
    # patient the user may enter data for), False if outside it.
    taken_study_ids: dict[str, bool]
    taken_mrns: set[tuple[int, str]]  # (center id, MRN) in use
    infusions: dict[int, list[tuple[date, int]]]  # patient id -> (date, number)
    events: dict[int, list[tuple[str, date]]]  # patient id -> (kind, date)
    lab_keys: dict[int, set[tuple[str, str, datetime]]]
    # (patient id, collected_at) -> {analyte: canonical value} stored for that sample
    stored_samples: dict[tuple[int, datetime], dict[str, Decimal | None]]
    time_problems: dict[int, Problem]  # id(sample record) -> its unreadable local time
    analytes: frozenset[str] = frozenset()
    _previous: dict[tuple[int, str], list[tuple[datetime, Decimal]]] | None = None
    # patient id -> the dates of its stored response assessments (a repeat is a duplicate)
    responses: dict[int, set[date]] = field(default_factory=dict)
    _limits: dict[int | None, Limits] = field(default_factory=dict)
    # patient id -> the latest collection time stored (a sample far before it is checked)
    latest_samples: dict[int, datetime] = field(default_factory=dict)

    def previous_entry(
        self, patient: Patient, analyte: str, before: datetime
    ) -> tuple[datetime, Decimal] | None:
        """The patient's last stored non-zero value of `analyte` (canonical unit) before a time,
        with its time, for a unit-slip check; None for a new patient or a first value."""
        if patient.pk is None:
            return None
        if self._previous is None:
            ids = [p.pk for p in self.existing.values()]
            rows = LabResult.objects.filter(patient_id__in=ids)
            self._previous = facts.previous_values_of(rows, self.analytes)
        series = self._previous.get((patient.pk, analyte), [])
        index = bisect.bisect_left(series, (before,)) - 1
        return series[index] if index >= 0 else None

    def limits(self, center: Center | None) -> Limits:
        """The center's current plausibility limits, read once per center per batch."""
        key = center.pk if center is not None else None
        if key not in self._limits:
            self._limits[key] = facts.limits_of(center)
        return self._limits[key]


def context_load(batch: Batch, scope: Scope, *, lock: bool) -> Context:
    study_ids = batch.study_ids()
    in_scope = scope.patients.filter(study_id__in=study_ids).values_list("pk", flat=True)
    patients = Patient.objects.filter(pk__in=list(in_scope)).select_related("center")
    if lock:
        # One writer per patient; locked in a fixed order so two imports never deadlock.
        patients = patients.select_for_update(of=("self",)).order_by("pk")
    existing = {p.study_id: p for p in patients}
    folded = {s.lower() for s in study_ids}
    in_scope_ids: set[int] = set()
    taken: dict[str, bool] = {}
    others = facts.study_ids_taken(
        Patient.objects.all(), folded, excluding=[p.pk for p in existing.values()]
    )
    others = list(others)
    if others:
        in_scope_ids = set(
            scope.patients.filter(pk__in=[pk for pk, _f in others]).values_list("pk", flat=True)
        )
    for pk, lowered in others:
        taken[lowered] = taken.get(lowered, False) or pk in in_scope_ids
    mrns = {r.mrn for r in batch.patients if r.mrn}
    taken_mrns = set(
        Patient.objects.filter(mrn__in=mrns).values_list("center_id", "mrn") if mrns else []
    )
    time_problems = _local_times(batch, existing, scope)
    ids = [p.pk for p in existing.values()]
    infusions: dict[int, list] = defaultdict(list)
    events: dict[int, list] = defaultdict(list)
    responses: dict[int, set] = defaultdict(set)
    lab_keys: dict[int, set] = defaultdict(set)
    stored: dict[tuple[int, datetime], dict] = defaultdict(dict)
    latest: dict[int, datetime] = {}
    if ids:
        infusions = facts.infusions_of(Infusion.objects.filter(patient_id__in=ids))
        events = facts.events_of(ClinicalEvent.objects.filter(patient_id__in=ids))
        if batch.responses:
            responses = facts.responses_of(ResponseAssessment.objects.filter(patient_id__in=ids))
        times = {
            s.collected_at
            for s in batch.samples
            if s.collected_at is not None and s.collected_at.tzinfo is not None
        }
        results = LabResult.objects.filter(patient_id__in=ids)
        if times:
            for pid, rows in facts.lab_results_of(results, at=times).items():
                for analyte, specimen, when, value in rows:
                    lab_keys[pid].add((analyte, specimen, when))
                    stored[(pid, when)][analyte] = value
        if batch.samples:
            latest = facts.latest_samples_of(results)
    return Context(
        latest_samples=latest,
        scope=scope,
        existing=existing,
        taken_study_ids=taken,
        taken_mrns=taken_mrns,
        infusions=infusions,
        events=events,
        responses=responses,
        lab_keys=lab_keys,
        stored_samples=stored,
        time_problems=time_problems,
        analytes=frozenset(v.analyte for s in batch.samples for v in s.values),
    )


def _local_times(batch: Batch, existing: dict[str, Patient], scope: Scope) -> dict[int, Problem]:
    """Collection times without an offset, read in the patient's center's zone (its stored
    center's, or the center a new patient of the batch is created in). A time the clocks skip or
    show twice is a problem of its sample."""
    new_centers = {
        r.study_id: (scope.centers.get(r.center_code) if r.center_code else scope.default_center)
        for r in batch.patients
    }
    problems: dict[int, Problem] = {}
    for sample in batch.samples:
        moment = sample.collected_at
        if moment is None or moment.tzinfo is not None:
            continue
        patient = existing.get(sample.study_id)
        center = patient.center if patient is not None else new_centers.get(sample.study_id)
        if center is None:
            continue  # no such patient: reported as such by the checks
        try:
            sample.collected_at = at_local_time(moment, center.tzinfo)
        except LocalTimeError as error:
            problems[id(sample)] = Problem(sample.place, "collected_at", moment, str(error))
    return problems


def patient_facts(
    batch: Batch, ctx: Context, patients: dict[str, Patient]
) -> dict[str, PatientFacts]:
    """What the validation rules compare a record with, per study ID: each patient's stored
    records plus the batch's own (a relapse is checked against an infusion given in the same
    batch). `patients`: every patient the batch touches, stored or new."""
    infusion_dates: dict[str, list] = defaultdict(list)
    events: dict[str, list] = defaultdict(list)
    for study_id, patient in patients.items():
        if patient.pk:
            infusion_dates[study_id] += [d for d, _n in ctx.infusions.get(patient.pk, [])]
            events[study_id] += ctx.events.get(patient.pk, [])
    for record in batch.infusions:
        if record.infusion_date is not None:
            infusion_dates[record.study_id].append(record.infusion_date)
    for record in batch.events:
        if record.event_date is not None:
            events[record.study_id].append((record.kind, record.event_date))
    return defaultdict(
        PatientFacts,
        {
            study_id: PatientFacts(
                infusion_dates=tuple(infusion_dates[study_id]),
                events=tuple(events[study_id]),
                lab_keys=frozenset(ctx.lab_keys.get(patient.pk, ())) if patient.pk else frozenset(),
            )
            for study_id, patient in patients.items()
        },
    )
