"""The one place that reads a patient's `PatientFacts` from the database (CLINICAL.md section 2).

One query per kind of fact, for one patient or for many: the loaders below take the rows to read
(`patient.infusions.all()` for one patient, `Infusion.objects.filter(patient_id__in=ids)` for a
batch) and return them per patient id. `facts_for` builds one record's facts with them (a
model's `clean()` without facts: a correction, the admin, a new infusion or event; the sample
form), without the record being changed; `patients.ingest.context` builds a whole batch's with
the same loaders, in a few set-based queries. The checks (`patients.validation`,
`patients.plausibility_checks`) only read facts. This module names no model (it is handed the
rows), so `patients.models` may import it without a circle.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import date, datetime
from decimal import Decimal

from django.db.models import Max, Min, QuerySet
from django.db.models.functions import Lower

from patients.plausibility import Limits
from patients.plausibility_checks import plausibility_limits_for
from patients.validation import PatientFacts

# (analyte, specimen, collected_at, canonical value) of a stored result
LabRow = tuple[str, str, datetime, Decimal | None]


def facts_for(
    patient,
    *,
    excluding=None,
    dates: bool = False,
    labs: bool = False,
    study_id: bool = False,
    earliest: bool = False,
) -> PatientFacts:
    """The facts of `patient` that its checks need, without the stored record `excluding` (the
    one being changed): `dates` its infusion dates and events; `labs` its stored results (the
    duplicate and plausibility checks) and its center's plausibility limits; `study_id` whether
    another patient has its study ID; `earliest` its earliest clinical date. A patient not yet
    stored has no records; its center's limits still apply."""
    stored = patient is not None and patient.pk is not None
    found: dict = {}
    if dates and stored:
        infusions = infusions_of(patient.infusions.all(), excluding=excluding)[patient.pk]
        found["infusion_dates"] = tuple(when for when, _n in infusions)
        found["events"] = tuple(events_of(patient.events.all(), excluding=excluding)[patient.pk])
    if labs and stored:
        rows = lab_results_of(patient.lab_results.all(), excluding=excluding)[patient.pk]
        found["lab_keys"] = frozenset((a, s, when) for a, s, when, _v in rows)
        found["lab_values"] = tuple((a, when, v) for a, _s, when, v in rows)
    if labs and patient is not None:
        found["limits"] = limits_of(patient.center if patient.center_id else None)
    if study_id and patient is not None and patient.study_id:
        found["study_id_taken"] = study_ids_taken(
            type(patient)._default_manager.all(),
            {patient.study_id.lower()},
            excluding=[patient.pk] if stored else [],
        ).exists()
    if earliest and stored and patient.center_id is not None:
        found["earliest_record"] = _earliest(patient)
    return PatientFacts(**found)


def _without(rows: QuerySet, excluding) -> QuerySet:
    """The rows without the record being changed (if it is one of them)."""
    if excluding is not None and excluding.pk is not None and rows.model is type(excluding):
        rows = rows.exclude(pk=excluding.pk)
    return rows


def _by_patient(rows: QuerySet, *columns: str) -> dict[int, list[tuple]]:
    """patient id -> the `columns` of its rows."""
    found: dict[int, list] = defaultdict(list)
    for pid, *row in rows.values_list("patient_id", *columns):
        found[pid].append(tuple(row))
    return found


def infusions_of(rows: QuerySet, *, excluding=None) -> dict[int, list[tuple[date, int]]]:
    """patient id -> (date, number) of its infusions."""
    return _by_patient(_without(rows, excluding), "infusion_date", "infusion_number")


def events_of(rows: QuerySet, *, excluding=None) -> dict[int, list[tuple[str, date]]]:
    """patient id -> (kind, date) of its clinical events."""
    return _by_patient(_without(rows, excluding), "kind", "event_date")


def responses_of(rows: QuerySet) -> dict[int, set[date]]:
    """patient id -> the dates of its response assessments (a repeat is a duplicate)."""
    found: dict[int, set] = defaultdict(set)
    for pid, dates in _by_patient(rows, "assessed_on").items():
        found[pid] = {when for (when,) in dates}
    return found


def lab_results_of(rows: QuerySet, *, excluding=None, at=None) -> dict[int, list[LabRow]]:
    """patient id -> its stored results (`LabRow`), all of them or only those collected at the
    times `at` (an import's duplicate and same-sample checks)."""
    rows = _without(rows, excluding)
    if at is not None:
        rows = rows.filter(collected_at__in=at)
    return _by_patient(rows, "analyte", "specimen", "collected_at", "canonical_value")


def latest_samples_of(rows: QuerySet) -> dict[int, datetime]:
    """patient id -> the latest collection time stored (a sample far before it is checked)."""
    return dict(
        rows.values("patient_id")
        .annotate(latest=Max("collected_at"))
        .values_list("patient_id", "latest")
    )


def previous_values_of(
    rows: QuerySet, analytes
) -> dict[tuple[int, str], list[tuple[datetime, Decimal]]]:
    """(patient id, analyte) -> (collected_at, canonical value) of its non-zero stored values in
    time order, for the unit-slip check against the previous value."""
    series: dict[tuple[int, str], list] = defaultdict(list)
    rows = (
        rows.filter(analyte__in=list(analytes), canonical_value__gt=0)
        .order_by("patient_id", "analyte", "collected_at")
        .values_list("patient_id", "analyte", "collected_at", "canonical_value")
    )
    for pid, analyte, when, value in rows.iterator(chunk_size=5000):
        series[(pid, analyte)].append((when, value))
    return series


def study_ids_taken(patients: QuerySet, folded: set[str], *, excluding) -> QuerySet:
    """(pk, lower-cased study ID) of the patients among `patients` whose study ID is one of
    `folded` in any case, other than the patients `excluding` (their pks)."""
    return (
        patients.annotate(folded=Lower("study_id"))
        .filter(folded__in=folded)
        .exclude(pk__in=list(excluding))
        .values_list("pk", "folded")
    )


def limits_of(center) -> Limits:
    """The center's plausibility limits in force; the defaults without a center."""
    return plausibility_limits_for(center) if center is not None else Limits()


def _earliest(patient):
    """The earliest date of any of the patient's clinical records (a result's in the center's
    local time)."""
    firsts = [
        patient.infusions.aggregate(first=Min("infusion_date"))["first"],
        patient.responses.aggregate(first=Min("assessed_on"))["first"],
        patient.events.aggregate(first=Min("event_date"))["first"],
        patient.therapies.aggregate(first=Min("start_date"))["first"],
    ]
    first_lab = patient.lab_results.aggregate(first=Min("collected_at"))["first"]
    if first_lab is not None:
        firsts.append(first_lab.astimezone(patient.center.tzinfo).date())
    return min((d for d in firsts if d is not None), default=None)
