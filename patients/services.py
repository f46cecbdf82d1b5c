"""Services that change clinical data.

Every change locks the patient row (one writer per patient), validates with `full_clean()`,
saves, records who did it in the audit history, and announces the change (`patients.signals`;
monitoring re-evaluates the patient's alerts), all in one transaction: a result and the alerts
it causes are committed together or not at all.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import IntegrityError, models, transaction
from django.utils.translation import gettext as _

from patients import plausibility_checks, signals, units, validation
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
            confirmed = instance.plausibility_confirmed and user is not None
            instance.plausibility_confirmed_by = user if confirmed else None
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

    Errors are keyed "<analyte>-<field>" (e.g. "pb_bcell_abs-value"), or "collected_at" for the
    sample as a whole, so a form with one row per analyte can show each message beside its field.
    A value outside a soft plausibility limit is refused with the code
    `plausibility_checks.UNCONFIRMED` unless its LabValue is `confirmed`; hard limits always refuse.
    """
    if not values:
        raise ValidationError({"__all__": [_("Enter at least one result.")]})
    errors: dict[str, list] = {}
    with transaction.atomic():
        patient = _lock_patient(patient.pk)
        results = []
        seen = set()
        for entry in values:
            if entry.analyte in seen:
                errors.setdefault(f"{entry.analyte}-value", []).append(
                    _("This analyte is entered twice for one sample.")
                )
                continue
            seen.add(entry.analyte)
            definition = units.ANALYTES.get(entry.analyte)
            result = LabResult(
                patient=patient,
                analyte=entry.analyte,
                specimen=definition.specimen if definition else "",
                collected_at=collected_at,
                value=entry.value,
                unit=entry.unit,
                qualifier=entry.qualifier,
                method=entry.method,
                entered_by=entered_by if entered_by and entered_by.is_authenticated else None,
            )
            result._checked_with_its_sample = True  # plausibility below, with its siblings
            try:
                result.full_clean()
            except ValidationError as error:
                for field, messages in error.error_dict.items():
                    key = "collected_at" if field == "collected_at" else f"{entry.analyte}-{field}"
                    _add_unique(errors, key, messages)
                continue
            _with_history_user(result, entered_by)
            results.append(result)
        _check_sample_plausibility(patient, collected_at, values, results, entered_by, errors)
        if errors:
            raise ValidationError(errors)
        for result in results:  # save() (not bulk_create) so that each gets its audit row
            result.save()
        _patient_changed(patient)
    return results


def _text(error: ValidationError) -> str:
    return error.message % error.params if error.params else error.message


def _add_unique(errors: dict[str, list], key: str, messages: list[ValidationError]) -> None:
    shown = {_text(m) for m in errors.get(key, [])}
    for message in messages:
        text = _text(message)
        if text not in shown:
            errors.setdefault(key, []).append(message)
            shown.add(text)


def _check_sample_plausibility(
    patient: Patient,
    collected_at: datetime,
    values: list[LabValue],
    results: list[LabResult],
    user: AbstractBaseUser | None,
    errors: dict[str, list],
) -> None:
    """Hard limits refuse; soft ones need the value's confirmation, which is then recorded."""
    findings = plausibility_checks.sample_plausibility(
        patient=patient,
        collected_at=collected_at,
        values={r.analyte: r.canonical_value for r in results},
    )
    confirmed = {v.analyte for v in values if v.confirmed}
    for result in results:
        mine = [f for f in findings if f.analyte == result.analyte]
        refusals = plausibility_checks.plausibility_errors(
            mine, confirmed=result.analyte in confirmed
        )
        if refusals:
            _add_unique(errors, f"{result.analyte}-value", refusals["value"])
        soft = [f.message for f in mine if not f.is_hard]
        if soft and result.analyte in confirmed:
            result.plausibility_confirmed = True
            result.plausibility_warning = " ".join(soft)[:1000]
            if user is not None and user.is_authenticated:
                result.plausibility_confirmed_by = user


def plausibility_limits_publish(
    *, center, user: AbstractBaseUser | None, values: dict, note: str = ""
) -> PlausibilityLimits:
    """Store a new version of a center's plausibility limits (no center: registry-wide).

    The previous version is retired, never changed, as with the rule parameters.
    """
    return settings_publish(PlausibilityLimits, center=center, user=user, values=values, note=note)
