"""Check a whole batch with the models' own validation, before anything is written.

Each record becomes its model instance and goes through `clean_fields()` (types, choices, lengths)
and the model's `clean(facts=...)` (the rules of `patients.validation`), with the patient's other
records pre-loaded (`context`) and the batch's own records added, so a relapse is checked against
an infusion in the same file. Unique constraints are checked as sets, against the stored rows and
within the batch. Every problem is collected with its place; nothing stops at the first.

This module orders the checks and holds those of patients, infusions, responses, events and
therapies; the lab samples' are `patients.ingest.samples` (and their plausibility,
`patients.ingest.plausibility`), the one hook per record type that calls the models' rules is
`patients.ingest.rules`, and what a check builds (the plan, the problems) `patients.ingest.plan`.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import date

from django.utils.translation import gettext as _

from patients.ingest.context import Context, patient_facts
from patients.ingest.plan import Collector, Plan, plan_patient
from patients.ingest.records import Batch, InfusionRecord, Problem
from patients.ingest.rules import (
    model_instance,
    validate_event,
    validate_infusion,
    validate_patient,
    validate_response,
    validate_therapy,
)
from patients.ingest.samples import check_samples
from patients.models import ClinicalEvent, Infusion, Patient, PreemptiveTherapy, ResponseAssessment
from patients.vocabulary import DEATH


def batch_check(batch: Batch, ctx: Context) -> tuple[Plan, list[Problem]]:
    plan = Plan(patients=dict(ctx.existing))
    out = Collector(batch.confirm_hint)
    _check_patients(batch, ctx, plan, out)
    facts = patient_facts(batch, ctx, plan.patients)
    _check_infusions(batch, ctx, plan, facts, out)
    check_samples(batch, ctx, plan, facts, out)
    assessed: dict[tuple[str, date], str] = {}
    for record in batch.responses:
        patient = plan_patient(record, plan, out)
        if patient is not None:
            _not_again(
                out,
                record,
                "assessed_on",
                (record.study_id, record.assessed_on),
                assessed,
                patient.pk and record.assessed_on in ctx.responses.get(patient.pk, ()),
                _("A response assessment on this date is already recorded for this patient"),
            )
            response = model_instance(ResponseAssessment, record, patient=patient)
            out.add_errors(record.place, record, validate_response(response, record))
            plan.responses.append(response)
    _check_events(batch, ctx, plan, facts, out)
    for record in batch.therapies:
        patient = plan_patient(record, plan, out)
        if patient is not None:
            therapy = model_instance(PreemptiveTherapy, record, patient=patient)
            errors = validate_therapy(therapy, record, facts[record.study_id])
            out.add_errors(record.place, record, errors)
            plan.therapies.append(therapy)
    if not out.problems and batch.is_empty():
        out.add("", "", None, _("Nothing to import."))
    return plan, out.problems


def _check_patients(batch: Batch, ctx: Context, plan: Plan, out: Collector) -> None:
    seen: dict[str, str] = {}  # study IDs compared without regard to case, as stored
    mrns: set[tuple[int, str]] = set(ctx.taken_mrns)
    for record in batch.patients:
        if record.study_id in ctx.existing:
            continue  # already stored: the batch refers to it (its stored details stand)
        folded = record.study_id.lower()
        if folded in seen:
            out.add(
                record.place,
                "study_id",
                record.study_id,
                _("Also given at %(place)s.") % {"place": seen[folded]},
            )
            continue
        seen[folded] = record.place
        if ctx.taken_study_ids.get(folded) is False:
            out.add(
                record.place,
                "study_id",
                record.study_id,
                # Never "exists at another center": that would confirm another center's ID.
                _(
                    "This study ID cannot be used for a new patient here: check it against your "
                    "center's list, or ask the registry for a study ID."
                ),
            )
            continue
        if not ctx.scope.may_add_patients:
            out.add(record.place, "study_id", record.study_id, _("You may not add patients."))
            continue
        center = (
            ctx.scope.centers.get(record.center_code)
            if record.center_code
            else ctx.scope.default_center
        )
        if center is None:
            message = (
                _("No center %(code)r where you may add patients.") % {"code": record.center_code}
                if record.center_code
                else _("Name the patient's center (you belong to none).")
            )
            out.add(record.place, "center_code", record.center_code, message)
            continue
        patient = model_instance(Patient, record, center=center)
        out.add_errors(record.place, record, validate_patient(patient, record, ctx))
        if record.mrn:
            if (center.pk, record.mrn) in mrns:
                out.add(
                    record.place, "mrn", record.mrn, _("This MRN is already used at the center.")
                )
            mrns.add((center.pk, record.mrn))
        plan.patients[record.study_id] = patient
        plan.new_patients.append(patient)


def _check_infusions(batch, ctx: Context, plan: Plan, facts, out: Collector) -> None:
    numbers: dict[str, dict[int, str]] = defaultdict(dict)
    dates: dict[str, dict] = defaultdict(dict)
    for study_id, patient in plan.patients.items():
        for when, number in ctx.infusions.get(patient.pk, []) if patient.pk else []:
            numbers[study_id][number] = "a stored infusion"
            dates[study_id][when] = "a stored infusion"
    pending: list[tuple[InfusionRecord, Infusion]] = []
    for record in sorted(batch.infusions, key=lambda r: r.infusion_date or date.max):
        patient = plan_patient(record, plan, out)
        if patient is None:
            continue
        if record.infusion_date in dates[record.study_id]:
            out.add(
                record.place,
                "infusion_date",
                record.infusion_date,
                _("An infusion on this date is already given (%(place)s).")
                % {"place": dates[record.study_id][record.infusion_date]},
            )
        elif record.infusion_date is not None:
            dates[record.study_id][record.infusion_date] = record.place
        if record.infusion_number is not None:
            if record.infusion_number in numbers[record.study_id]:
                out.add(
                    record.place,
                    "infusion_number",
                    record.infusion_number,
                    _("Infusion number %(number)s is already given (%(place)s).")
                    % {
                        "number": record.infusion_number,
                        "place": numbers[record.study_id][record.infusion_number],
                    },
                )
            numbers[record.study_id][record.infusion_number] = record.place
        pending.append((record, patient))
    for record, patient in pending:
        number = record.infusion_number
        if number is None:  # numbered by date after the stored and given ones
            number = max(numbers[record.study_id], default=0) + 1
            numbers[record.study_id][number] = record.place
        infusion = model_instance(Infusion, record, patient=patient, infusion_number=number)
        errors = validate_infusion(infusion, record, facts[record.study_id])
        out.add_errors(record.place, record, errors)
        plan.infusions.append(infusion)


def _not_again(out, record, field_name, key, seen: dict, stored: bool, message: str) -> None:
    """A record repeating a stored one or one given earlier in the batch (same patient, same
    date, same kind) is a duplicate: recorded once, never twice."""
    if stored:
        out.add(
            record.place,
            field_name,
            getattr(record, field_name),
            _("%(problem)s (stored).") % {"problem": message},
        )
    elif key in seen:
        out.add(
            record.place,
            field_name,
            getattr(record, field_name),
            _("%(problem)s (%(place)s).") % {"problem": message, "place": seen[key]},
        )
    seen.setdefault(key, record.place)


def _check_events(batch, ctx: Context, plan: Plan, facts, out: Collector) -> None:
    given: dict[tuple, str] = {}
    deaths = {
        study_id: "a stored death"
        for study_id, patient in plan.patients.items()
        if patient.pk and any(kind == DEATH for kind, _d in ctx.events.get(patient.pk, []))
    }
    for record in batch.events:
        patient = plan_patient(record, plan, out)
        if patient is None:
            continue
        if record.kind == DEATH:
            if record.study_id in deaths:
                out.add(
                    record.place,
                    "kind",
                    record.kind,
                    _("A patient dies once (also %(place)s).") % {"place": deaths[record.study_id]},
                )
            deaths.setdefault(record.study_id, record.place)
        else:
            _not_again(
                out,
                record,
                "event_date",
                (record.study_id, record.kind, record.event_date),
                given,
                bool(patient.pk)
                and (record.kind, record.event_date) in ctx.events.get(patient.pk, []),
                _("This %(event)s on this date is already recorded for this patient")
                % {"event": record.kind.replace("_", " ")},
            )
        event = model_instance(ClinicalEvent, record, patient=patient)
        errors = validate_event(event, record, facts[record.study_id])
        out.add_errors(record.place, record, errors)
        plan.events.append(event)
