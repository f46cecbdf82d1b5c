"""Services that change clinical data.

Every change locks the patient row (one writer per patient), validates with `full_clean()`,
saves, records who did it in the audit history, and announces the change (`patients.signals`;
monitoring re-evaluates the patient's alerts), all in one transaction: a result and the alerts
it causes are committed together or not at all. A new sample is written as a one-sample batch
through the import path (`patients.ingest.write.batch_ingest`), so a form and an import share
one set of checks and one writer.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import IntegrityError, models, transaction
from django.utils.translation import gettext as _

from patients import plausibility_checks, signals, validation
from patients.ingest.context import Scope
from patients.ingest.records import Batch, LabValueRecord, Problem, SampleRecord
from patients.ingest.write import batch_ingest, batch_preview
from patients.models import LabResult, Patient, PlausibilityLimits
from patients.versioned import settings_publish


def _lock_patient(patient_id: int) -> Patient:
    return Patient.objects.select_for_update().select_related("center").get(pk=patient_id)


def _patient_changed(patient: Patient) -> None:
    """Announce the change inside the caller's transaction; the floors above keep their derived
    state (monitoring: the alerts) consistent with it (`patients.signals`)."""
    signals.records_changed_send(sender=Patient, patient_ids=[patient.pk])


def _with_history_user(instance: models.Model, user: AbstractBaseUser | None) -> None:
    # django-simple-history reads this attribute when writing the audit row.
    if user is not None and user.is_authenticated:
        instance._history_user = user


def clinical_record_save(*, instance: models.Model, user: AbstractBaseUser | None) -> models.Model:
    """Create or change one clinical record (infusion, response, event, therapy, lab result)."""
    with transaction.atomic():
        patient = _lock_patient(instance.patient_id)
        instance.patient = patient
        instance.full_clean()
        if isinstance(instance, LabResult):
            plausibility_checks.confirmer_set(instance, user)
        _with_history_user(instance, user)
        try:
            with transaction.atomic():
                instance.save()
        except IntegrityError as error:  # a concurrent writer got there first
            raise ValidationError(
                _(
                    "This record conflicts with one saved meanwhile (for example the same result "
                    "or infusion entered twice): reload the page and check."
                )
            ) from error
        _patient_changed(patient)
    return instance


def clinical_record_delete(*, instance: models.Model, user: AbstractBaseUser | None) -> None:
    with transaction.atomic():
        patient = _lock_patient(instance.patient_id)
        _with_history_user(instance, user)
        instance.delete()
        _patient_changed(patient)


def patient_save(*, patient: Patient, user: AbstractBaseUser | None, hematologists=None) -> Patient:
    with transaction.atomic():
        if patient.pk:
            _lock_patient(patient.pk)
        patient.full_clean()
        _with_history_user(patient, user)
        try:
            with transaction.atomic():
                patient.save()
        except IntegrityError as error:  # a concurrent writer took the study ID meanwhile
            raise ValidationError({"study_id": [validation.STUDY_ID_TAKEN]}) from error
        if hematologists is not None:
            patient.hematologists.set(hematologists)
        _patient_changed(patient)
    return patient


@dataclass(frozen=True)
class LabValue:
    """One analyte of a sample as entered: a value with its unit, or a qualifier."""

    analyte: str
    value: Decimal | None
    unit: str
    qualifier: str = ""
    method: str = ""
    # The person or lab system has checked a value marked as unusual and says it is correct.
    confirmed: bool = False


def lab_results_record(
    *,
    patient: Patient,
    collected_at: datetime,
    values: list[LabValue],
    entered_by: AbstractBaseUser | None,
) -> list[LabResult]:
    """Record several analytes of one sample; all are saved or, if any is wrong, none.

    The sample is a one-sample batch written by the import path (`patients.ingest`): the same
    checks, duplicate rules, plausibility and audit rows as every import, in this transaction.
    Errors are keyed "<analyte>-<field>" (e.g. "pb_bcell_abs-value"), or "collected_at" for the
    sample as a whole, so a form with one row per analyte can show each message beside its field.
    A value outside a soft plausibility limit is refused with the code
    `plausibility_checks.UNCONFIRMED` unless its LabValue is `confirmed`; hard limits always refuse.
    """
    if not values:
        raise ValidationError({"__all__": [_("Enter at least one result.")]})
    # The collection date's plausibility is the form's to ask, with its own confirmation
    # (`forms.SampleForm`, through `sample_preview`); this service never refused a date by itself.
    batch, scope = _sample_batch(
        patient=patient, collected_at=collected_at, values=values, user=entered_by, date=True
    )
    with transaction.atomic():
        ingested = batch_ingest(batch, scope)  # locks the patient's row
        if not ingested.written:
            raise ValidationError(_form_errors(ingested.problems))
        _patient_changed(ingested.plan.patients[patient.study_id])
    return ingested.plan.labs


def sample_preview(
    *, patient: Patient, collected_at: datetime | None, values: list[LabValue]
) -> dict[str, list[ValidationError]]:
    """What `lab_results_record` would refuse in this sample, and its collection date's
    plausibility, without writing or locking: the import path's checks (`batch_preview`) under
    the same keys, so that a form shows every problem at once from the checks the save runs.
    Every value and the date are checked unconfirmed: a soft refusal has the code
    `plausibility_checks.UNCONFIRMED` and the caller drops those the person confirmed. A sample
    without values is checked for its date (saying that a result is missing is the caller's)."""
    batch, scope = _sample_batch(
        patient=patient,
        collected_at=collected_at,
        values=[dataclasses.replace(entry, confirmed=False) for entry in values],
        user=None,
        date=False,
    )
    problems = batch_preview(batch, scope).problems
    return _form_errors([p for p in problems if (p.place, p.field) != (_SAMPLE, "values")])


def _sample_batch(
    *,
    patient: Patient,
    collected_at: datetime | None,
    values: list[LabValue],
    user: AbstractBaseUser | None,
    date: bool,
) -> tuple[Batch, Scope]:
    """One sample of `patient` as a one-sample batch, and the scope of its one patient; `date`:
    its collection date is confirmed."""
    sample = SampleRecord(
        place=_SAMPLE,
        study_id=patient.study_id,
        collected_at=collected_at,
        values=[
            LabValueRecord(
                place=entry.analyte,
                analyte=entry.analyte,
                value=entry.value,
                unit=entry.unit,
                qualifier=entry.qualifier,
                method=entry.method,
                confirmed=entry.confirmed,
            )
            for entry in values
        ],
        confirmed=date,
    )
    scope = Scope(user=user, patients=Patient.objects.filter(pk=patient.pk), may_add_patients=False)
    return Batch(samples=[sample]), scope


_SAMPLE = "sample"  # the place of the one-sample batch's sample; a value's place is its analyte


def _form_errors(problems: list[Problem]) -> dict[str, list[ValidationError]]:
    """The batch's problems under the form's keys ("<analyte>-<field>", "collected_at",
    "__all__"), each message once per key, with its code (a form asks for a confirmation on
    `plausibility_checks.UNCONFIRMED`)."""
    errors: dict[str, list[ValidationError]] = {}
    for problem in problems:
        if problem.place == _SAMPLE:
            key = "collected_at" if problem.field == "collected_at" else "__all__"
        elif problem.place and problem.field:
            key = f"{problem.place}-{problem.field}"
        else:
            key = "__all__"
        shown = errors.setdefault(key, [])
        if all(e.message != problem.message for e in shown):
            shown.append(ValidationError(problem.message, code=problem.code or None))
    return errors


def plausibility_limits_publish(
    *, center, user: AbstractBaseUser | None, values: dict, note: str = ""
) -> PlausibilityLimits:
    """Store a new version of a center's plausibility limits (no center: registry-wide).

    The previous version is retired, never changed, as with the rule parameters.
    """
    return settings_publish(PlausibilityLimits, center=center, user=user, values=values, note=note)
