"""One function per record type: the single place where a record type's rules are called.

Each record's model instance goes through `clean_fields()` (types, choices, lengths) and the
model's `clean(facts=...)` (the rules of `patients.validation`), with the patient's facts
pre-loaded for the batch. A new rule of `patients.validation` (plausibility limits, identifier
rules) is wired in here once and applies to every format.
"""

from __future__ import annotations

from dataclasses import fields
from functools import cache

from django.core.exceptions import ValidationError
from django.utils.translation import gettext as _

from patients.ingest.context import Context
from patients.ingest.records import (
    EventRecord,
    InfusionRecord,
    LabValueRecord,
    PatientRecord,
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
from patients.validation import Errors, PatientFacts

_FOREIGN_KEYS = ["patient", "center", "entered_by", "hematologists"]


@cache
def _field_names(model) -> frozenset[str]:
    return frozenset(f.name for f in model._meta.concrete_fields)


def model_instance(model, record, **given):
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
