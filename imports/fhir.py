"""FHIR R4 lab results in and out (parsed and validated with fhir.resources, R4B models).

In: a Bundle of Observations with the Patients they reference. A Patient is found by its
identifier (the study ID; `patient_identifier_system` in the mapping picks which identifier);
one not yet stored is created with its sex and birth date only, never a name. Each Observation's
code is looked up in the mapping (a center's local file first, then the shipped LOINC entries)
and its UCUM unit likewise; an unknown code or unit is reported with its place, never guessed.
A value with the comparator "<" is below the limit of detection; the qualifier code system
below carries "undetectable". Observations of one patient at one time form one sample. A value
refused as unusual (a soft plausibility limit, CLINICAL.md section 2) is sent again with the
extension CONFIRMED_EXTENSION (valueBoolean true) on its Observation, as the JSON API's
`"confirmed": true`; the confirmation is stored with the sender's account.

Out: one patient's results as a Bundle (type collection), pseudonymous: the study ID only.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

from django.conf import settings
from fhir.resources.R4B.bundle import Bundle
from pydantic import ValidationError as FhirValidationError

from patients import units
from patients.ingest.records import Batch, LabValueRecord, PatientRecord, SampleRecord
from patients.models import Patient

DEFAULT_MAPPING = Path(__file__).with_name("fhir_mapping.json")
UCUM = "http://unitsofmeasure.org"
ANALYTE_SYSTEM = "urn:carttrack:analyte"
QUALIFIER_SYSTEM = "urn:carttrack:qualifier"
STUDY_ID_SYSTEM = "urn:carttrack:study-id"
CONFIRMED_EXTENSION = "urn:carttrack:extension:plausibility-confirmed"
CONFIRM_HINT = (
    "If the value is correct, send the Observation again with the extension "
    f'{{"url": "{CONFIRMED_EXTENSION}", "valueBoolean": true}}.'
)
GENDER = {"female": "F", "male": "M"}
RESULT_STATUSES = {"final", "amended", "corrected"}
TO_UCUM = {
    units.CELLS_PER_UL: "/uL",
    units.GIGA_PER_L: "10*9/L",
    units.MEGA_PER_L: "10*6/L",
    units.PERCENT_LYMPHOCYTES: "%",
    units.PERCENT_CELLS: "%",
    units.FRACTION: "1",
    units.COPIES_PER_UG: "{copies}/ug",
}


@cache
def mapping() -> dict:
    """The shipped mapping, a center's local file (FHIR_LOCAL_MAPPING_FILE) taking precedence."""
    merged = json.loads(DEFAULT_MAPPING.read_text())
    local_path = getattr(settings, "FHIR_LOCAL_MAPPING_FILE", "")
    if local_path:
        local = json.loads(Path(local_path).read_text())
        merged["codes"] = local.get("codes", []) + merged["codes"]
        merged["units"] = {**merged["units"], **local.get("units", {})}
        if local.get("patient_identifier_system"):
            merged["patient_identifier_system"] = local["patient_identifier_system"]
    for entry in merged["codes"]:
        if entry["analyte"] not in units.ANALYTES:
            raise ValueError(f"FHIR mapping: unknown analyte {entry['analyte']!r}")
    return merged


def _code_index() -> dict[tuple[str, str], str]:
    index: dict[tuple[str, str], str] = {}
    for entry in mapping()["codes"]:
        index.setdefault((entry["system"], entry["code"]), entry["analyte"])
    for code in units.ANALYTES:  # our own code system, as the export writes it
        index[(ANALYTE_SYSTEM, code)] = code
    return index


def _unit(analyte: str, ucum: str) -> str | None:
    unit = mapping()["units"].get(ucum)
    if unit == "percent":
        unit = units.ANALYTES[analyte].canonical_unit
        return unit if unit in (units.PERCENT_LYMPHOCYTES, units.PERCENT_CELLS) else None
    if unit is None and ucum in units.UNIT_LABELS:
        unit = ucum  # our own unit code, as the export writes it
    return unit if unit in units.ANALYTES[analyte].units else None


def bundle_parse(data: dict) -> tuple[Batch, dict[str, list[str]]]:
    """A Bundle as import records, or the problems by place (entry[3].resource.code)."""
    try:
        bundle = Bundle.model_validate(data)
    except FhirValidationError as error:
        problems: dict[str, list[str]] = {}
        for e in error.errors():
            path = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in e["loc"])
            problems.setdefault(path.lstrip(".") or "bundle", []).append(e["msg"])
        return Batch(), problems
    problems = {}
    batch = Batch(confirm_hint=CONFIRM_HINT)
    id_system = mapping()["patient_identifier_system"]
    patients: dict[str, str] = {}  # fullUrl or Patient/id -> study ID
    entries = list(enumerate(bundle.entry or []))
    for i, entry in entries:
        resource = entry.resource
        if resource is None or resource.get_resource_type() != "Patient":
            continue
        place = f"entry[{i}].resource"
        chosen = [
            ident.value
            for ident in resource.identifier or []
            if ident.value and (not id_system or ident.system == id_system)
        ]
        if not chosen:
            problems[f"{place}.identifier"] = [
                "The Patient needs an identifier with the study ID"
                + (f" (system {id_system})." if id_system else ".")
            ]
            continue
        study_id = chosen[0]
        for ref in (entry.fullUrl, f"Patient/{resource.id}" if resource.id else None):
            if ref:
                patients[ref] = study_id
        batch.patients.append(
            PatientRecord(
                place=place,
                study_id=study_id,
                sex=GENDER.get(resource.gender or "", "U"),
                date_of_birth=resource.birthDate,
            )
        )
    # A Patient already stored is the import checks' business (patients.ingest.checks): theirs
    # is skipped, another center's is refused with a message that says so.
    codes = _code_index()
    samples: dict[tuple, SampleRecord] = {}
    for i, entry in entries:
        resource = entry.resource
        if resource is None or resource.get_resource_type() == "Patient":
            continue
        place = f"entry[{i}].resource"
        if resource.get_resource_type() != "Observation":
            problems[place] = [
                f"A {resource.get_resource_type()} is not imported; send Observations."
            ]
            continue
        record, study_id, collected_at, errors = _observation(resource, place, patients, codes)
        if errors:
            for key, message in errors:
                problems.setdefault(key, []).append(message)
            continue
        key = (study_id, collected_at)
        if key not in samples:
            samples[key] = SampleRecord(place=place, study_id=study_id, collected_at=collected_at)
        samples[key].values.append(record)
    batch.samples = list(samples.values())
    if not problems and not batch.samples and not batch.patients:
        problems["bundle"] = ["The Bundle holds no Observation to import."]
    return batch, problems


def _observation(resource, place: str, patients: dict, codes: dict):
    errors: list[tuple[str, str]] = []
    if resource.status not in RESULT_STATUSES:
        errors.append(
            (f"{place}.status", f"Only final results are imported, not {resource.status!r}.")
        )
    subject = resource.subject
    study_id = None
    if subject is not None and subject.reference:
        study_id = patients.get(subject.reference)
    elif subject is not None and subject.identifier is not None:
        study_id = subject.identifier.value
    if not study_id:
        errors.append(
            (f"{place}.subject", "Reference a Patient of the Bundle, or give its identifier.")
        )
    codings = (resource.code.coding or []) if resource.code else []
    analyte = next(
        (codes[(c.system, c.code)] for c in codings if (c.system, c.code) in codes), None
    )
    if analyte is None:
        shown = ", ".join(
            f"{c.system}|{c.code}" + (f" ({c.display})" if c.display else "") for c in codings
        )
        errors.append(
            (
                f"{place}.code",
                f"Unknown code {shown or '(none)'}: add it to the center's FHIR mapping.",
            )
        )
    collected_at = resource.effectiveDateTime
    if collected_at is None or not hasattr(collected_at, "tzinfo") or collected_at.tzinfo is None:
        errors.append(
            (f"{place}.effectiveDateTime", "Give the collection time with its UTC offset.")
        )
    value, unit, qualifier = None, "", ""
    quantity, concept = resource.valueQuantity, resource.valueCodeableConcept
    if analyte is not None and quantity is not None:
        ucum = quantity.code or quantity.unit or ""
        unit = _unit(analyte, ucum) or ""
        if not unit:
            errors.append(
                (
                    f"{place}.valueQuantity.code",
                    f"Unknown or unfitting unit {ucum!r} for {analyte}.",
                )
            )
        if quantity.comparator == "<":
            qualifier = units.BELOW_LOD
        elif quantity.comparator:
            errors.append(
                (
                    f"{place}.valueQuantity.comparator",
                    "Only '<' (below the limit of detection) is read.",
                )
            )
        else:
            value = quantity.value
    elif analyte is not None and concept is not None:
        found = [c.code for c in concept.coding or [] if c.system == QUALIFIER_SYSTEM]
        if found and found[0] in (units.UNDETECTABLE, units.BELOW_LOD):
            qualifier, unit = found[0], units.ANALYTES[analyte].canonical_unit
        else:
            errors.append((f"{place}.valueCodeableConcept", f"Use {QUALIFIER_SYSTEM} codes."))
    elif analyte is not None:
        errors.append((f"{place}.value[x]", "Give a valueQuantity (or a qualifier)."))
    confirmed = [e.valueBoolean for e in resource.extension or [] if e.url == CONFIRMED_EXTENSION]
    if confirmed and confirmed[0] is None:
        errors.append((f"{place}.extension", "The confirmation needs valueBoolean true or false."))
    record = LabValueRecord(
        place=place,
        analyte=analyte or "",
        value=value,
        unit=unit,
        qualifier=qualifier,
        confirmed=bool(confirmed and confirmed[0]),
    )
    return record, study_id, collected_at, errors


def patient_bundle(patient: Patient) -> dict:
    """One patient's results as a FHIR Bundle (collection), with the study ID only."""
    loinc = {}
    for entry in mapping()["codes"]:
        loinc.setdefault(entry["analyte"], entry)
    tz = patient.center.tzinfo
    patient_url = f"urn:carttrack:patient:{patient.study_id}"
    entries = [
        {
            "fullUrl": patient_url,
            "resource": {
                "resourceType": "Patient",
                "identifier": [{"system": STUDY_ID_SYSTEM, "value": patient.study_id}],
                "gender": {"F": "female", "M": "male"}.get(patient.sex, "unknown"),
            },
        }
    ]
    for result in patient.lab_results.order_by("collected_at", "pk"):
        codings = [
            {
                "system": ANALYTE_SYSTEM,
                "code": result.analyte,
                "display": result.get_analyte_display(),
            }
        ]
        if result.analyte in loinc:
            entry = loinc[result.analyte]
            codings.insert(
                0, {"system": entry["system"], "code": entry["code"], "display": entry["display"]}
            )
        observation = {
            "resourceType": "Observation",
            "id": f"lab-{result.pk}",
            "status": "final",
            "code": {"coding": codings},
            "subject": {"reference": patient_url},
            "effectiveDateTime": result.collected_at.astimezone(tz).isoformat(),
        }
        if result.qualifier:
            observation["valueCodeableConcept"] = {
                "coding": [{"system": QUALIFIER_SYSTEM, "code": result.qualifier}],
                "text": result.get_qualifier_display(),
            }
        else:
            observation["valueQuantity"] = {
                "value": format(result.value.normalize(), "f"),
                "unit": units.UNIT_LABELS[result.unit],
                "system": UCUM,
                "code": TO_UCUM[result.unit],
            }
        entries.append({"fullUrl": f"urn:carttrack:lab:{result.pk}", "resource": observation})
    bundle = Bundle.model_validate(
        {"resourceType": "Bundle", "type": "collection", "entry": entries}
    )
    return json.loads(bundle.model_dump_json())
