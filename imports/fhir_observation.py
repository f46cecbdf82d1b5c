"""One FHIR Observation judged: not monitored, kept out, held, withdrawn, an error, or a result.

- Its code is looked up in the mapping (`imports.fhir_codes`). A code of a standard system
  (LOINC, SNOMED CT) that is not mapped is not monitored (hemoglobin, body weight): skipped and
  reported as information. A local code that is not mapped, a unit that does not fit, or a
  patient who is not stored cannot be placed: the result is held (imports.held) with the reason,
  never guessed and never dropped.
- Status: `final` is imported; `amended`/`corrected` replace the result stored under the same
  Observation identifier (its history keeps the old value), or are imported when none is;
  `entered-in-error` withdraws the stored result it names by identifier; `preliminary`,
  `registered`, `cancelled`, `unknown` and a `dataAbsentReason` are reported and kept out.
- Its time is its effective time, else its DiagnosticReport's (found by `imports.fhir_read`).
- valueQuantity comparators `<` and `<=` are below the limit of detection; `>` and `>=` are
  refused with a message (the product cannot store "more than"). UCUM `/mm3` and `10*3/mm3`
  are `/uL` and `10*3/uL`. The qualifier code system carries "undetectable".
- A value refused as unusual (a soft plausibility limit, CLINICAL.md section 2) is sent again
  with the extension CONFIRMED_EXTENSION (valueBoolean true) on its Observation, as the JSON
  API's `"confirmed": true`; the confirmation is stored with the sender's account.
"""

from __future__ import annotations

from datetime import date, datetime

from imports.fhir_codes import (
    CONFIRMED_EXTENSION,
    QUALIFIER_SYSTEM,
    STANDARD_SYSTEMS,
    analyte_unit,
    no_study_id_message,
    study_id_systems,
)
from imports.fhir_entry import RESULT, SKIPPED, WITHDRAW, FhirEntry
from imports.models import UNKNOWN_PATIENT, UNMAPPED_CODE, UNMAPPED_UNIT
from imports.problems import Coded
from patients import units
from patients.ingest.records import LabValueRecord

IMPORTED_STATUSES = {"final", "amended", "corrected"}
REPLACING_STATUSES = {"amended", "corrected"}
WITHDRAWN = "entered-in-error"
BELOW = {"<", "<="}


def effective_time(resource) -> object:
    """The effective time of an Observation or a DiagnosticReport (a period's start), or None."""
    for name in ("effectiveDateTime", "effectiveInstant"):
        value = getattr(resource, name, None)
        if value is not None:
            return value
    period = getattr(resource, "effectivePeriod", None)
    return period.start if period is not None else None


def shown_codes(codings) -> str:
    """Codings as the messages show them: system|code (display), comma-separated."""
    return ", ".join(
        f"{c.system}|{c.code}" + (f" ({c.display})" if c.display else "") for c in codings
    )


def observation_judge(i: int, resource, *, patients: dict, codes: dict, report_time) -> FhirEntry:
    """Entry `i`, an Observation, judged (see the module's docstring). `patients` is
    {reference: study ID, or the Patient's entry without one} (`imports.fhir_read`), `codes`
    the mapping's {(system, code): analyte}, `report_time` its DiagnosticReport's time."""
    judged = FhirEntry(i, "Observation", RESULT, status=resource.status or "")
    moment = effective_time(resource) or report_time
    codings = (resource.code.coding or []) if resource.code else []
    _describe(judged, resource, codings, moment)
    analyte = next(
        (codes[(c.system, c.code)] for c in codings if (c.system, c.code) in codes), None
    )
    if analyte is None and (not codings or all(c.system in STANDARD_SYSTEMS for c in codings)):
        judged.fate = SKIPPED
        return judged.say(".code", f"{judged.code_shown or 'This code'} is not monitored; skipped.")
    _status_judge(judged, resource)
    if judged.fate == RESULT:
        _subject_judge(judged, resource, patients)
    if judged.fate != RESULT:
        return judged
    if analyte is None:
        return judged.hold(
            UNMAPPED_CODE,
            ".code",
            Coded("held_fhir_unknown_code", code=judged.code_shown),
        )
    if not isinstance(moment, datetime) or moment.tzinfo is None:
        return judged.refuse(".effectiveDateTime", "Give the collection time with its UTC offset.")
    judged.collected_at = moment
    judged.value = _value(judged, resource, analyte)
    return judged


def _describe(judged: FhirEntry, resource, codings, moment) -> None:
    """What the answer and the held queue show of the Observation: identifier, code, time."""
    ident = next((x for x in resource.identifier or [] if x.system and x.value), None)
    judged.identifier = (ident.system, ident.value) if ident is not None else None
    judged.code_shown = shown_codes(codings) or (resource.code.text if resource.code else "")
    judged.source = resource
    judged.sent_time = moment.isoformat() if isinstance(moment, date) else ""


def _status_judge(judged: FhirEntry, resource) -> None:
    """Withdrawal (entered-in-error), or kept out: not a final result, or no value at all."""
    if judged.status == WITHDRAWN:
        if judged.identifier is None:
            judged.keep_out(
                ".identifier",
                "An entered-in-error Observation without an identifier cannot name the stored "
                "result: nothing was withdrawn (withdraw it on the patient's page).",
            )
        else:
            judged.fate = WITHDRAW
    elif judged.status not in IMPORTED_STATUSES:
        judged.keep_out(
            ".status", f"Status {judged.status!r}: kept out; only final results are imported."
        )
    elif resource.dataAbsentReason is not None:
        reason = resource.dataAbsentReason
        shown = reason.text or shown_codes(reason.coding or []) or "no value"
        judged.keep_out(".dataAbsentReason", f"No value ({shown}): kept out.")


def _subject_judge(judged: FhirEntry, resource, patients: dict) -> None:
    """The study ID of the Observation's subject: a Patient of the Bundle, or an identifier of
    a study-ID system; else held (unknown patient) or an error."""
    subject = resource.subject
    if subject is not None and subject.reference:
        judged.subject_shown = subject.reference
        found = patients.get(subject.reference)
        if isinstance(found, FhirEntry):
            judged.refuse(".subject", f"Its Patient (entry[{found.index}]) has no study ID.")
        elif found:
            judged.study_id = found
        else:
            judged.hold(
                UNKNOWN_PATIENT,
                ".subject",
                Coded("held_fhir_patient_not_in_bundle", reference=subject.reference),
            )
        return
    ident = subject.identifier if subject is not None else None
    if ident is not None and ident.value:
        judged.subject_shown = f"{ident.system}|{ident.value}"
        if ident.system in study_id_systems():
            judged.study_id = ident.value
        else:
            judged.hold(
                UNKNOWN_PATIENT,
                ".subject.identifier",
                no_study_id_message().replace("Patient", "subject"),
            )
        return
    judged.refuse(".subject", "Reference a Patient of the Bundle, or give its study ID.")


def _value(judged: FhirEntry, resource, analyte: str) -> LabValueRecord | None:
    """The value to store, or None when the entry was refused or held (its fate says which)."""
    measured = _measured(judged, resource, analyte)
    if measured is None:
        return None
    confirmed = [e.valueBoolean for e in resource.extension or [] if e.url == CONFIRMED_EXTENSION]
    if confirmed and confirmed[0] is None:
        judged.refuse(".extension", "The confirmation needs valueBoolean true or false.")
        return None
    value, unit, qualifier = measured
    return LabValueRecord(
        place=judged.place,
        analyte=analyte,
        value=value,
        unit=unit,
        qualifier=qualifier,
        confirmed=bool(confirmed and confirmed[0]),
    )


def _measured(judged: FhirEntry, resource, analyte: str) -> tuple[object, str, str] | None:
    """(value, unit, qualifier) of a valueQuantity or a qualifier concept, or None."""
    if resource.valueQuantity is not None:
        return _quantity(judged, resource.valueQuantity, analyte)
    concept = resource.valueCodeableConcept
    if concept is not None:
        found = [c.code for c in concept.coding or [] if c.system == QUALIFIER_SYSTEM]
        if found and found[0] in (units.UNDETECTABLE, units.BELOW_LOD):
            return None, units.ANALYTES[analyte].canonical_unit, found[0]
        judged.refuse(".valueCodeableConcept", f"Use {QUALIFIER_SYSTEM} codes.")
        return None
    judged.refuse(".value[x]", "Give a valueQuantity (or a qualifier).")
    return None


def _quantity(judged: FhirEntry, quantity, analyte: str) -> tuple[object, str, str] | None:
    """(value, unit, qualifier) of a valueQuantity: `<`/`<=` below the limit of detection; a
    `>`/`>=` is refused and a unit that does not fit the analyte held."""
    ucum = quantity.code or quantity.unit or ""
    unit = analyte_unit(analyte, ucum) or ""
    if quantity.comparator in (">", ">="):
        judged.refuse(
            ".valueQuantity.comparator",
            f"{quantity.comparator!r} (above a limit) cannot be stored: send the measured "
            "value, or '<' for a value below the limit of detection.",
        )
        return None
    if not unit:
        judged.hold(
            UNMAPPED_UNIT,
            ".valueQuantity.code",
            Coded("held_fhir_unknown_unit", unit=repr(ucum), analyte={"analyte": analyte}),
        )
        return None
    if quantity.comparator in BELOW:
        return None, unit, units.BELOW_LOD
    if quantity.value is None:
        judged.refuse(".valueQuantity.value", "Give the value.")
        return None
    return quantity.value, unit, ""
