"""Services that change clinical data.

Every change locks the patient row (one writer per patient), validates with `full_clean()`,
saves, records who did it in the audit history, and re-evaluates the patient's alerts, all in one
transaction: a result and the alerts it causes are committed together or not at all.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import IntegrityError, models, transaction

from patients import units
from patients.models import LabResult, Patient


def _lock_patient(patient_id: int) -> Patient:
    return Patient.objects.select_for_update().select_related("center").get(pk=patient_id)


def _patient_changed(patient: Patient) -> None:
    """Keep derived state (alerts) consistent with the data, inside the caller's transaction."""
    from monitoring.services import alerts_sync  # monitoring builds on patients, not vice versa

    alerts_sync(patient=patient)


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
        _with_history_user(instance, user)
        try:
            with transaction.atomic():
                instance.save()
        except IntegrityError as error:  # a concurrent writer got there first
            raise ValidationError(
                f"This record conflicts with one saved meanwhile: {error}"
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
        patient.save()
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
    """
    if not values:
        raise ValidationError({"__all__": ["Enter at least one result."]})
    errors: dict[str, list[str]] = {}
    with transaction.atomic():
        patient = _lock_patient(patient.pk)
        results = []
        seen = set()
        for entry in values:
            if entry.analyte in seen:
                errors.setdefault(f"{entry.analyte}-value", []).append(
                    "This analyte is entered twice for one sample."
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
            try:
                result.full_clean()
            except ValidationError as error:
                for field, messages in error.message_dict.items():
                    key = "collected_at" if field == "collected_at" else f"{entry.analyte}-{field}"
                    for message in messages:
                        if message not in errors.get(key, []):
                            errors.setdefault(key, []).append(message)
                continue
            _with_history_user(result, entered_by)
            results.append(result)
        if errors:
            raise ValidationError(errors)
        for result in results:  # save() (not bulk_create) so that each gets its audit row
            result.save()
        _patient_changed(patient)
    return results
