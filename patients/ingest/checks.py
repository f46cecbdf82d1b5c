"""Check a whole batch with the models' own validation, before anything is written.

Each record becomes its model instance and goes through `clean_fields()` (types, choices, lengths)
and the model's `clean(facts=...)` (the rules of `patients.validation`), with the patient's other
records pre-loaded (`context`) and the batch's own records added, so a relapse is checked against
an infusion in the same file. Unique constraints are checked as sets, against the stored rows and
within the batch. Every problem is collected with its place; nothing stops at the first.

One function per record type (`validate_patient`, `validate_infusion`, `validate_lab_value`, ...)
is the single place where a record type's rules are called: a new rule of `patients.validation`
(plausibility limits, identifier rules) is wired in there once and applies to every format.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field, fields
from datetime import date
from functools import cache
from typing import Any

from django.core.exceptions import ValidationError
from django.utils.translation import gettext as _

from patients import plausibility_checks, units
from patients.ingest.context import Context, patient_facts
from patients.ingest.plausibility import check_plausibility
from patients.ingest.records import (
    Batch,
    EventRecord,
    InfusionRecord,
    LabValueRecord,
    PatientRecord,
    Problem,
    ResponseRecord,
    SampleRecord,
    TherapyRecord,
)
from patients.models import (
    ClinicalEvent,
    Infusion,
    LabResult,
    Patient,
    PreemptiveTherapy,
    ResponseAssessment,
)
from patients.plausibility import check_sample_date
from patients.validation import Errors, PatientFacts, today_in
from patients.vocabulary import DEATH

_FOREIGN_KEYS = ["patient", "center", "entered_by", "hematologists"]


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


@cache
def _field_names(model) -> frozenset[str]:
    return frozenset(f.name for f in model._meta.concrete_fields)


def _instance(model, record, **given):
    """The model instance of a record: the record types name their fields as the models do, so
    every record field the model has is copied (a place or a center code is not); `given`
    adds or overrides the rest (the patient, an infusion's number, a sample's time)."""
    names = _field_names(model)
    values = {f.name: getattr(record, f.name) for f in fields(record) if f.name in names}
    return model(**{**values, **given})


def _model_errors(instance, facts: PatientFacts | None) -> Errors:
    """The model's own validation: field types and choices, then its `clean()` rules."""
    errors: Errors = {}
    choices: set[str] = set()  # fields whose only complaint so far is Django's invalid_choice
    try:
        instance.clean_fields(exclude=_FOREIGN_KEYS)
    except ValidationError as error:
        for key, found in error.error_dict.items():
            for e in found:
                if e.code == "invalid_choice":
                    choices.add(key)
                    errors.setdefault(key, []).append(_choice_message(instance, key))
                else:
                    errors.setdefault(key, []).extend(e.messages)
    try:
        if facts is None:
            instance.clean()
        else:
            instance.clean(facts=facts)
    except ValidationError as error:
        for key, messages in error.message_dict.items():
            if key in choices:  # the rule's own words say it better, once
                errors[key] = []
                choices.discard(key)
            errors.setdefault(key, []).extend(m for m in messages if m not in errors.get(key, []))
    return errors


def _choice_message(instance, name: str) -> str:
    """Django's "Value 'x' is not a valid choice." in plain words, with what is accepted."""
    field = instance._meta.get_field(name)
    allowed = ", ".join(str(code) for code, _label in field.flatchoices if code != "")
    return _("%(value)r is not accepted here; use one of: %(allowed)s.") % {
        "value": getattr(instance, field.attname),
        "allowed": allowed,
    }


# --- one hook per record type: the place to wire in further rules of patients.validation -------


def validate_patient(patient: Patient, record: PatientRecord, ctx: Context) -> Errors:
    """Field rules (study ID characters, reserved words) and the study ID compared without
    regard to case with every stored patient, from the batch's one query."""
    taken = ctx.taken_study_ids.get(record.study_id.lower()) is not None
    return _model_errors(patient, PatientFacts(study_id_taken=taken))


def validate_infusion(infusion: Infusion, record: InfusionRecord, facts: PatientFacts) -> Errors:
    return _model_errors(infusion, facts)


def validate_lab_value(
    result: LabResult,
    record: LabValueRecord,
    sample: SampleRecord,
    facts: PatientFacts,
    ctx: Context,
) -> Errors:
    """The model's rules with the patient's facts; plausibility is checked per sample
    (`patients.ingest.plausibility`), with the other values of the sample."""
    return _model_errors(result, facts)


def validate_response(response: ResponseAssessment, record: ResponseRecord) -> Errors:
    return _model_errors(response, PatientFacts())


def validate_event(event: ClinicalEvent, record: EventRecord, facts: PatientFacts) -> Errors:
    return _model_errors(event, facts)


def validate_therapy(
    therapy: PreemptiveTherapy, record: TherapyRecord, facts: PatientFacts
) -> Errors:
    return _model_errors(therapy, facts)


# --- the batch ------------------------------------------------------------------------------


class _Collector:
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


def batch_check(batch: Batch, ctx: Context) -> tuple[Plan, list[Problem]]:
    plan = Plan(patients=dict(ctx.existing))
    out = _Collector(batch.confirm_hint)
    _check_patients(batch, ctx, plan, out)
    facts = patient_facts(batch, ctx, plan.patients)
    _check_infusions(batch, ctx, plan, facts, out)
    _check_samples(batch, ctx, plan, facts, out)
    assessed: dict[tuple[str, date], str] = {}
    for record in batch.responses:
        patient = _patient(record, plan, out)
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
            response = _instance(ResponseAssessment, record, patient=patient)
            out.add_errors(record.place, record, validate_response(response, record))
            plan.responses.append(response)
    _check_events(batch, ctx, plan, facts, out)
    for record in batch.therapies:
        patient = _patient(record, plan, out)
        if patient is not None:
            therapy = _instance(PreemptiveTherapy, record, patient=patient)
            errors = validate_therapy(therapy, record, facts[record.study_id])
            out.add_errors(record.place, record, errors)
            plan.therapies.append(therapy)
    if not out.problems and batch.is_empty():
        out.add("", "", None, _("Nothing to import."))
    return plan, out.problems


def _patient(record, plan: Plan, out: _Collector) -> Patient | None:
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


def _check_patients(batch: Batch, ctx: Context, plan: Plan, out: _Collector) -> None:
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
        patient = _instance(Patient, record, center=center)
        out.add_errors(record.place, record, validate_patient(patient, record, ctx))
        if record.mrn:
            if (center.pk, record.mrn) in mrns:
                out.add(
                    record.place, "mrn", record.mrn, _("This MRN is already used at the center.")
                )
            mrns.add((center.pk, record.mrn))
        plan.patients[record.study_id] = patient
        plan.new_patients.append(patient)


def _check_infusions(batch, ctx: Context, plan: Plan, facts, out: _Collector) -> None:
    numbers: dict[str, dict[int, str]] = defaultdict(dict)
    dates: dict[str, dict] = defaultdict(dict)
    for study_id, patient in plan.patients.items():
        for when, number in ctx.infusions.get(patient.pk, []) if patient.pk else []:
            numbers[study_id][number] = "a stored infusion"
            dates[study_id][when] = "a stored infusion"
    pending: list[tuple[InfusionRecord, Infusion]] = []
    for record in sorted(batch.infusions, key=lambda r: r.infusion_date or date.max):
        patient = _patient(record, plan, out)
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
        infusion = _instance(Infusion, record, patient=patient, infusion_number=number)
        errors = validate_infusion(infusion, record, facts[record.study_id])
        out.add_errors(record.place, record, errors)
        plan.infusions.append(infusion)


def _check_samples(batch, ctx: Context, plan: Plan, facts, out: _Collector) -> None:
    seen: dict[tuple, str] = {}
    user = ctx.scope.user
    entered_by = user if user is not None and user.is_authenticated else None
    checked: list[tuple[SampleRecord, Patient, list[tuple[LabValueRecord, LabResult]]]] = []
    for sample in batch.samples:
        patient = _patient(sample, plan, out)
        if patient is None:
            continue
        if id(sample) in ctx.time_problems:
            problem = ctx.time_problems[id(sample)]
            out.add(problem.place, problem.field, problem.value, problem.message)
            continue
        if not sample.values:
            out.add(sample.place, "values", None, _("Enter at least one result."))
        _check_sample_date(sample, patient, facts[sample.study_id], ctx, out)
        in_sample: set[str] = set()
        fine: list[tuple[LabValueRecord, LabResult]] = []
        first = len(plan.labs)
        for record in sample.values:
            if record.analyte in in_sample:
                out.add(
                    record.place,
                    "value",
                    record.value,
                    _("This analyte is entered twice for one sample."),
                )
                continue
            in_sample.add(record.analyte)
            definition = units.ANALYTES.get(record.analyte)
            result = _instance(
                LabResult,
                record,
                patient=patient,
                specimen=record.specimen or (definition.specimen if definition else ""),
                collected_at=sample.collected_at,
                entered_by=entered_by,
            )
            errors = validate_lab_value(result, record, sample, facts[sample.study_id], ctx)
            out.add_errors(record.place, record, errors, sample_place=sample.place)
            if not errors and result.canonical_value is not None:
                fine.append((record, result))
            key = (sample.study_id, result.analyte, result.specimen, sample.collected_at)
            if key in seen and sample.collected_at is not None:
                out.add(
                    record.place,
                    "analyte",
                    record.analyte,
                    _(
                        "The same result (analyte, specimen, collection time) is also given at "
                        "%(place)s."
                    )
                    % {"place": seen[key]},
                )
            seen.setdefault(key, record.place)
            plan.labs.append(result)
        checked.append((sample, patient, fine))
        plan.samples.append((sample, patient, plan.labs[first:]))
    check_plausibility(checked, ctx, out)


def _check_sample_date(
    sample: SampleRecord, patient: Patient, facts: PatientFacts, ctx: Context, out: _Collector
) -> None:
    """The collection date as carefully as a value (issue 23): before the first infusion (the
    stored ones and the batch's) or far before the latest stored sample, it is refused until the
    sender confirms it (`SampleRecord.date_confirmed`), reported like an unusual value. A date
    after today is the model's refusal (the collection time is in the future)."""
    if sample.collected_at is None or patient.center_id is None:
        return
    tz = patient.center.tzinfo
    latest = ctx.latest_samples.get(patient.pk) if patient.pk else None
    findings = check_sample_date(
        sample.collected_at.astimezone(tz).date(),
        infusion_dates=facts.infusion_dates,
        sample_dates=[latest.astimezone(tz).date()] if latest is not None else [],
        today=today_in(tz),
    )
    soft = [f for f in findings if not f.is_hard]
    refusals = plausibility_checks.plausibility_errors(soft, confirmed=sample.date_confirmed)
    for message in refusals.get("value", []):
        out.add(sample.place, "collected_at", sample.collected_at, message)


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


def _check_events(batch, ctx: Context, plan: Plan, facts, out: _Collector) -> None:
    given: dict[tuple, str] = {}
    deaths = {
        study_id: "a stored death"
        for study_id, patient in plan.patients.items()
        if patient.pk and any(kind == DEATH for kind, _d in ctx.events.get(patient.pk, []))
    }
    for record in batch.events:
        patient = _patient(record, plan, out)
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
        event = _instance(ClinicalEvent, record, patient=patient)
        errors = validate_event(event, record, facts[record.study_id])
        out.add_errors(record.place, record, errors)
        plan.events.append(event)
