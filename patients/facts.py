"""One patient's `PatientFacts`, loaded for the checks of one record (CLINICAL.md section 2).

A model's `clean()` without facts (a correction, the admin, a new infusion or event) and the
sample form get here what an import gets for a whole batch from `patients.ingest.context`: the
patient's other records, without the one being changed, so that `patients.validation` and
`patients.plausibility_checks` only read facts. It reads through the patient's own relations and
never names a model, so `patients.models` may import it without a circle.
"""

from __future__ import annotations

from django.db.models import Min

from patients.plausibility import Limits
from patients.plausibility_checks import plausibility_limits_for
from patients.validation import PatientFacts


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
        found["infusion_dates"] = tuple(
            _others(patient.infusions, excluding).values_list("infusion_date", flat=True)
        )
        found["events"] = tuple(
            _others(patient.events, excluding).values_list("kind", "event_date")
        )
    if labs and stored:
        rows = list(
            _others(patient.lab_results, excluding).values_list(
                "analyte", "specimen", "collected_at", "canonical_value"
            )
        )
        found["lab_keys"] = frozenset((a, s, when) for a, s, when, _v in rows)
        found["lab_values"] = tuple((a, when, v) for a, _s, when, v in rows)
    if labs and patient is not None:
        found["limits"] = _limits(patient)
    if study_id and patient is not None and patient.study_id:
        others = type(patient)._default_manager.filter(study_id__iexact=patient.study_id)
        if stored:
            others = others.exclude(pk=patient.pk)
        found["study_id_taken"] = others.exists()
    if earliest and stored and patient.center_id is not None:
        found["earliest_record"] = _earliest(patient)
    return PatientFacts(**found)


def _others(manager, excluding):
    """The related rows without the record being changed (if it is one of them)."""
    rows = manager.all()
    if excluding is not None and excluding.pk is not None and rows.model is type(excluding):
        rows = rows.exclude(pk=excluding.pk)
    return rows


def _limits(patient) -> Limits:
    return plausibility_limits_for(patient.center) if patient.center_id else Limits()


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
