"""The checks of a batch's lab samples: each value with its model's rules, the sample's
collection date, duplicates within the sample and the batch, then the samples' plausibility
(`patients.ingest.plausibility`)."""

from __future__ import annotations

from django.utils.translation import gettext as _

from patients import plausibility_checks, units
from patients.ingest.context import Context
from patients.ingest.plan import Collector, Plan, plan_patient
from patients.ingest.plausibility import check_plausibility
from patients.ingest.records import LabValueRecord, SampleRecord
from patients.ingest.rules import model_instance, validate_lab_value
from patients.models import LabResult, Patient
from patients.plausibility import check_sample_date
from patients.validation import PatientFacts, today_in


def check_samples(batch, ctx: Context, plan: Plan, facts, out: Collector) -> None:
    seen: dict[tuple, str] = {}
    user = ctx.scope.user
    entered_by = user if user is not None and user.is_authenticated else None
    checked: list[tuple[SampleRecord, Patient, list[tuple[LabValueRecord, LabResult]]]] = []
    for sample in batch.samples:
        patient = plan_patient(sample, plan, out)
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
            result = model_instance(
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
    sample: SampleRecord, patient: Patient, facts: PatientFacts, ctx: Context, out: Collector
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
