"""What a batch is checked against, loaded in a few set-based queries (never one per row).

The patients the batch names (locked when writing), the records they already have that the
checks compare with (infusion dates, events, the keys of stored results for the duplicate check),
identifiers in use, and the centers. Plausibility checks that compare with a patient's previous
values read them from `previous_values`, loaded on first use for the whole batch at once.
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal

from django.db.models import QuerySet

from patients.ingest.records import Batch
from patients.models import Center, ClinicalEvent, Infusion, LabResult, Patient


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
    taken_study_ids: set[str]  # study IDs in use by patients outside the scope
    taken_mrns: set[tuple[int, str]]  # (center id, MRN) in use
    infusions: dict[int, list[tuple[date, int]]]  # patient id -> (date, number)
    events: dict[int, list[tuple[str, date]]]  # patient id -> (kind, date)
    lab_keys: dict[int, set[tuple[str, str, datetime]]]
    _previous: dict[tuple[int, str], list[tuple[datetime, Decimal]]] | None = None

    def previous_value(self, patient: Patient, analyte: str, before: datetime) -> Decimal | None:
        """The patient's last stored non-zero value of `analyte` (canonical unit) before a time,
        for a unit-slip check; None for a new patient or a first value."""
        if patient.pk is None:
            return None
        if self._previous is None:
            self._previous = _previous_values(list(p.pk for p in self.existing.values()))
        series = self._previous.get((patient.pk, analyte), [])
        index = bisect.bisect_left(series, (before,)) - 1
        return series[index][1] if index >= 0 else None


def context_load(batch: Batch, scope: Scope, *, lock: bool) -> Context:
    study_ids = batch.study_ids()
    in_scope = scope.patients.filter(study_id__in=study_ids).values_list("pk", flat=True)
    patients = Patient.objects.filter(pk__in=list(in_scope)).select_related("center")
    if lock:
        # One writer per patient; locked in a fixed order so two imports never deadlock.
        patients = patients.select_for_update(of=("self",)).order_by("pk")
    existing = {p.study_id: p for p in patients}
    taken = set(
        Patient.objects.filter(study_id__in=study_ids - set(existing)).values_list(
            "study_id", flat=True
        )
    )
    mrns = {r.mrn for r in batch.patients if r.mrn}
    taken_mrns = set(
        Patient.objects.filter(mrn__in=mrns).values_list("center_id", "mrn") if mrns else []
    )
    ids = [p.pk for p in existing.values()]
    infusions: dict[int, list] = defaultdict(list)
    events: dict[int, list] = defaultdict(list)
    lab_keys: dict[int, set] = defaultdict(set)
    if ids:
        for pid, when, number in Infusion.objects.filter(patient_id__in=ids).values_list(
            "patient_id", "infusion_date", "infusion_number"
        ):
            infusions[pid].append((when, number))
        for pid, kind, when in ClinicalEvent.objects.filter(patient_id__in=ids).values_list(
            "patient_id", "kind", "event_date"
        ):
            events[pid].append((kind, when))
        times = {s.collected_at for s in batch.samples if s.collected_at is not None}
        if times:
            for pid, analyte, specimen, when in LabResult.objects.filter(
                patient_id__in=ids, collected_at__in=times
            ).values_list("patient_id", "analyte", "specimen", "collected_at"):
                lab_keys[pid].add((analyte, specimen, when))
    return Context(scope, existing, taken, taken_mrns, infusions, events, lab_keys)


def _previous_values(patient_ids: list[int]) -> dict[tuple[int, str], list]:
    series: dict[tuple[int, str], list] = defaultdict(list)
    rows = (
        LabResult.objects.filter(patient_id__in=patient_ids, canonical_value__gt=0)
        .order_by("patient_id", "analyte", "collected_at")
        .values_list("patient_id", "analyte", "collected_at", "canonical_value")
    )
    for pid, analyte, when, value in rows.iterator(chunk_size=5000):
        series[(pid, analyte)].append((when, value))
    return series
