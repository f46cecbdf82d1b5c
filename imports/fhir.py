"""FHIR R4 lab results in and out (parsed and validated with fhir.resources, R4B models).

In (`bundle_read`, then `imports.fhir_import.bundle_import`): every entry of a Bundle is judged
by FHIR's own semantics and answered; none is an error merely for being there.

- A Patient is matched by its study ID only: the identifier whose system is the configured
  study-ID system (FHIR_STUDY_ID_SYSTEM, else `patient_identifier_system` of the mapping) or
  CARTtrack's own (STUDY_ID_SYSTEM, as the export writes it). No other identifier (an MRN, an
  SSN) ever becomes a study ID: a Patient without one is an error that names the setting. One
  not yet stored is created with its sex and birth date only, never a name.
- An Observation's code is looked up in the mapping (a center's local file first, then the
  shipped LOINC entries). A code of a standard system (LOINC, SNOMED CT) that is not mapped is
  not monitored (hemoglobin, body weight): skipped and reported as information, as is every
  resource that is not a Patient or an Observation (Encounter, Claim, Condition...). A local code
  that is not mapped, a unit that does not fit, or a patient who is not stored cannot be placed:
  the result is held (imports.held) with the reason, never guessed and never dropped.
- Status: `final` is imported; `amended`/`corrected` replace the result stored under the same
  Observation identifier (its history keeps the old value), or are imported when none is;
  `entered-in-error` withdraws the stored result it names by identifier; `preliminary`,
  `registered`, `cancelled`, `unknown` and a `dataAbsentReason` are reported and kept out.
- A DiagnosticReport's effective time is its results' time when they give none.
- valueQuantity comparators `<` and `<=` are below the limit of detection; `>` and `>=` are
  refused with a message (the product cannot store "more than"). UCUM `/mm3` and `10*3/mm3`
  are `/uL` and `10*3/uL`. The qualifier code system below carries "undetectable".
- A value refused as unusual (a soft plausibility limit, CLINICAL.md section 2) is sent again
  with the extension CONFIRMED_EXTENSION (valueBoolean true) on its Observation, as the JSON
  API's `"confirmed": true`; the confirmation is stored with the sender's account.

Out: one patient's results as a Bundle (type collection), pseudonymous: the study ID only.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import date, datetime
from functools import cache
from pathlib import Path

from django.conf import settings
from fhir.resources.R4B.bundle import Bundle
from pydantic import ValidationError as FhirValidationError

from imports.models import UNKNOWN_PATIENT, UNMAPPED_CODE, UNMAPPED_UNIT
from imports.problems import Coded
from patients import units
from patients.ingest.records import LabValueRecord, PatientRecord
from patients.models import Patient

DEFAULT_MAPPING = Path(__file__).with_name("fhir_mapping.json")
UCUM = "http://unitsofmeasure.org"
ANALYTE_SYSTEM = "urn:carttrack:analyte"
QUALIFIER_SYSTEM = "urn:carttrack:qualifier"
STUDY_ID_SYSTEM = "urn:carttrack:study-id"
CONFIRMED_EXTENSION = "urn:carttrack:extension:plausibility-confirmed"
# A Bundle whose meta.tag holds this (system, code) is a backfill of past records: what it
# raises is history, recorded and analysed but never e-mailed (CLINICAL.md section 4).
HISTORY_TAG = ("urn:carttrack:import", "history")
CONFIRM_HINT = (
    "If the value is correct, send the Observation again with the extension "
    f'{{"url": "{CONFIRMED_EXTENSION}", "valueBoolean": true}}.'
)
GENDER = {"female": "F", "male": "M"}
IMPORTED_STATUSES = {"final", "amended", "corrected"}
REPLACING_STATUSES = {"amended", "corrected"}
WITHDRAWN = "entered-in-error"
# Code systems whose codes the product knows to be complete: a code of theirs that the mapping
# does not list is not monitored. A code of any other (local) system may be one the center has
# not mapped yet, so its result is held, not skipped.
STANDARD_SYSTEMS = {"http://loinc.org", "http://snomed.info/sct"}
BELOW = {"<", "<="}
TO_UCUM = {
    units.CELLS_PER_UL: "/uL",
    units.GIGA_PER_L: "10*9/L",
    units.MEGA_PER_L: "10*6/L",
    units.PERCENT_LYMPHOCYTES: "%",
    units.PERCENT_CELLS: "%",
    units.FRACTION: "1",
    units.COPIES_PER_UG: "{copies}/ug",
}

# What happens to an entry (FhirEntry.fate).
PATIENT, RESULT, SKIPPED, KEPT_OUT, HOLD, WITHDRAW, ERROR = (
    "patient",
    "result",
    "skipped",
    "kept_out",
    "hold",
    "withdraw",
    "error",
)


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


def study_id_system() -> str:
    """The configured identifier system of study IDs ("" when none is)."""
    return getattr(settings, "FHIR_STUDY_ID_SYSTEM", "") or mapping()["patient_identifier_system"]


def _study_id_systems() -> set[str]:
    return {s for s in (study_id_system(), STUDY_ID_SYSTEM) if s}


def _no_study_id_message() -> str:
    system = study_id_system()
    if system:
        return (
            f"The Patient has no identifier of the study-ID system {system} "
            "(FHIR_STUDY_ID_SYSTEM); no other identifier (MRN, SSN) is used as a study ID."
        )
    return (
        "The Patient has no study ID: no study-ID identifier system is configured. Set "
        "FHIR_STUDY_ID_SYSTEM (or patient_identifier_system in FHIR_LOCAL_MAPPING_FILE) to the "
        f"system of your study IDs, or send the identifier with system {STUDY_ID_SYSTEM}; no "
        "other identifier (MRN, SSN) is used as a study ID."
    )


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


@dataclass
class FhirEntry:
    """One entry of a Bundle as judged: its fate and, for a result, what to store."""

    index: int
    resource_type: str
    fate: str
    messages: list[tuple[str, str]] = field(default_factory=list)  # (expression, text)
    study_id: str = ""
    collected_at: datetime | None = None
    value: LabValueRecord | None = None
    identifier: tuple[str, str] | None = None
    status: str = ""
    code_shown: str = ""
    subject_shown: str = ""
    # For a result that cannot be placed (HOLD): why (imports.models' held reasons), and the
    # Observation as sent with its code, value, unit and time as text for the held queue.
    hold_reason: str = ""
    source: object = None
    sent_time: str = ""

    def hold(self, reason: str, expression: str, text: str) -> FhirEntry:
        self.fate, self.hold_reason = HOLD, reason
        return self.say(expression, text)

    @property
    def place(self) -> str:
        return f"entry[{self.index}].resource"

    def say(self, expression: str, text: str) -> FhirEntry:
        self.messages.append((f"{self.place}{expression}", text))
        return self


@dataclass
class Intake:
    """A Bundle read: its type, each entry judged, the Patients it brings; or why it is not
    a readable Bundle at all (`problems`, by place)."""

    type: str = ""
    entries: list[FhirEntry] = field(default_factory=list)
    patients: list[PatientRecord] = field(default_factory=list)
    problems: dict[str, list[str]] = field(default_factory=dict)
    history: bool = False  # the sender declared the Bundle a backfill (HISTORY_TAG)


ENTRY_PLACE = re.compile(r"^entry\[(\d+)\]")


def bundle_read(data: dict) -> Intake:
    """Parse a Bundle with fhir.resources and judge every entry (see the module's docstring)."""
    try:
        bundle = Bundle.model_validate(data)
    except FhirValidationError as error:
        problems: dict[str, list[str]] = {}
        for e in error.errors():
            path = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in e["loc"])
            problems.setdefault(path.lstrip(".") or "bundle", []).append(e["msg"])
        return Intake(problems=problems)
    tags = {(t.system, t.code) for t in ((bundle.meta.tag or []) if bundle.meta else [])}
    intake = Intake(type=bundle.type or "", history=HISTORY_TAG in tags)
    entries = list(enumerate(bundle.entry or []))
    by_reference: dict[str, tuple[int, object]] = {}
    for i, entry in entries:
        resource = entry.resource
        if resource is None:
            continue
        for ref in _references_of(entry.fullUrl, resource):
            by_reference[ref] = (i, resource)
    patients = _patients_read(entries, intake)
    report_times = _report_times(entries, by_reference)
    codes = _code_index()
    for i, entry in entries:
        resource = entry.resource
        if resource is None:
            intake.entries.append(FhirEntry(i, "", ERROR).say("", "The entry holds no resource."))
            continue
        kind = resource.get_resource_type()
        if kind == "Patient":
            continue  # judged by _patients_read
        if kind == "DiagnosticReport":
            intake.entries.append(
                FhirEntry(i, kind, SKIPPED).say(
                    "", "A DiagnosticReport is read through its Observations (and its time)."
                )
            )
        elif kind != "Observation":
            intake.entries.append(
                FhirEntry(i, kind, SKIPPED).say("", f"{kind} is not monitored; skipped.")
            )
        else:
            intake.entries.append(
                _observation(i, resource, patients, codes, report_times.get(i), by_reference)
            )
    intake.entries.sort(key=lambda e: e.index)
    return intake


def _references_of(full_url: str | None, resource) -> list[str]:
    refs = [full_url] if full_url else []
    if resource.id:
        refs.append(f"{resource.get_resource_type()}/{resource.id}")
    return refs


def _patients_read(entries, intake: Intake) -> dict[str, str | FhirEntry]:
    """{reference: study ID, or the Patient's entry when it has no study ID}."""
    systems = _study_id_systems()
    out: dict[str, str | FhirEntry] = {}
    for i, entry in entries:
        resource = entry.resource
        if resource is None or resource.get_resource_type() != "Patient":
            continue
        chosen = [
            ident.value
            for ident in resource.identifier or []
            if ident.value and ident.system in systems
        ]
        judged = FhirEntry(i, "Patient", PATIENT)
        if not chosen:
            judged.fate = ERROR
            judged.say(".identifier", _no_study_id_message())
        else:
            judged.study_id = chosen[0]
            intake.patients.append(
                PatientRecord(
                    place=judged.place,
                    study_id=chosen[0],
                    sex=GENDER.get(resource.gender or "", "U"),
                    date_of_birth=resource.birthDate,
                )
            )
        intake.entries.append(judged)
        for ref in _references_of(entry.fullUrl, resource):
            out[ref] = judged.study_id or judged
    return out


def _moment(resource) -> object:
    for name in ("effectiveDateTime", "effectiveInstant"):
        value = getattr(resource, name, None)
        if value is not None:
            return value
    period = getattr(resource, "effectivePeriod", None)
    return period.start if period is not None else None


def _report_times(entries, by_reference) -> dict[int, object]:
    """{Observation entry index: its DiagnosticReport's effective time}."""
    out: dict[int, object] = {}
    for _i, entry in entries:
        report = entry.resource
        if report is None or report.get_resource_type() != "DiagnosticReport":
            continue
        moment = _moment(report)
        if moment is None:
            continue
        for ref in report.result or []:
            found = by_reference.get(ref.reference or "")
            if found is None and ref.reference and entry.fullUrl and "/" in ref.reference:
                base = entry.fullUrl.rsplit("/", 2)[0]  # .../base/DiagnosticReport/101
                found = by_reference.get(f"{base}/{ref.reference}")
            if found is not None:
                out.setdefault(found[0], moment)
    return out


def _shown_codes(codings) -> str:
    return ", ".join(
        f"{c.system}|{c.code}" + (f" ({c.display})" if c.display else "") for c in codings
    )


def _observation(i: int, resource, patients: dict, codes: dict, report_time, by_reference):
    judged = FhirEntry(i, "Observation", RESULT, status=resource.status or "")
    ident = next((x for x in resource.identifier or [] if x.system and x.value), None)
    judged.identifier = (ident.system, ident.value) if ident is not None else None
    codings = (resource.code.coding or []) if resource.code else []
    judged.code_shown = _shown_codes(codings) or (resource.code.text if resource.code else "")
    judged.source = resource
    moment = _moment(resource) or report_time
    judged.sent_time = moment.isoformat() if isinstance(moment, date) else ""
    analyte = next(
        (codes[(c.system, c.code)] for c in codings if (c.system, c.code) in codes), None
    )
    if analyte is None and (not codings or all(c.system in STANDARD_SYSTEMS for c in codings)):
        judged.fate = SKIPPED
        return judged.say(".code", f"{judged.code_shown or 'This code'} is not monitored; skipped.")
    if judged.status == WITHDRAWN:
        if judged.identifier is None:
            judged.fate = KEPT_OUT
            return judged.say(
                ".identifier",
                "An entered-in-error Observation without an identifier cannot name the stored "
                "result: nothing was withdrawn (withdraw it on the patient's page).",
            )
        judged.fate = WITHDRAW
        return judged
    if judged.status not in IMPORTED_STATUSES:
        judged.fate = KEPT_OUT
        return judged.say(
            ".status", f"Status {judged.status!r}: kept out; only final results are imported."
        )
    if resource.dataAbsentReason is not None:
        judged.fate = KEPT_OUT
        reason = resource.dataAbsentReason
        shown = reason.text or _shown_codes(reason.coding or []) or "no value"
        return judged.say(".dataAbsentReason", f"No value ({shown}): kept out.")
    _subject(judged, resource, patients)
    if judged.fate != RESULT:
        return judged
    if analyte is None:
        return judged.hold(
            UNMAPPED_CODE,
            ".code",
            Coded("held_fhir_unknown_code", code=judged.code_shown),
        )
    if not isinstance(moment, datetime) or moment.tzinfo is None:
        return _error(judged, ".effectiveDateTime", "Give the collection time with its UTC offset.")
    judged.collected_at = moment
    value, unit, qualifier = None, "", ""
    quantity, concept = resource.valueQuantity, resource.valueCodeableConcept
    if quantity is not None:
        ucum = quantity.code or quantity.unit or ""
        unit = _unit(analyte, ucum) or ""
        if quantity.comparator in (">", ">="):
            return _error(
                judged,
                ".valueQuantity.comparator",
                f"{quantity.comparator!r} (above a limit) cannot be stored: send the measured "
                "value, or '<' for a value below the limit of detection.",
            )
        if not unit:
            return judged.hold(
                UNMAPPED_UNIT,
                ".valueQuantity.code",
                Coded("held_fhir_unknown_unit", unit=repr(ucum), analyte={"analyte": analyte}),
            )
        if quantity.comparator in BELOW:
            qualifier = units.BELOW_LOD
        elif quantity.value is None:
            return _error(judged, ".valueQuantity.value", "Give the value.")
        else:
            value = quantity.value
    elif concept is not None:
        found = [c.code for c in concept.coding or [] if c.system == QUALIFIER_SYSTEM]
        if found and found[0] in (units.UNDETECTABLE, units.BELOW_LOD):
            qualifier, unit = found[0], units.ANALYTES[analyte].canonical_unit
        else:
            return _error(judged, ".valueCodeableConcept", f"Use {QUALIFIER_SYSTEM} codes.")
    else:
        return _error(judged, ".value[x]", "Give a valueQuantity (or a qualifier).")
    confirmed = [e.valueBoolean for e in resource.extension or [] if e.url == CONFIRMED_EXTENSION]
    if confirmed and confirmed[0] is None:
        return _error(judged, ".extension", "The confirmation needs valueBoolean true or false.")
    judged.value = LabValueRecord(
        place=judged.place,
        analyte=analyte,
        value=value,
        unit=unit,
        qualifier=qualifier,
        confirmed=bool(confirmed and confirmed[0]),
    )
    return judged


def _error(judged: FhirEntry, expression: str, text: str) -> FhirEntry:
    judged.fate = ERROR
    return judged.say(expression, text)


def _subject(judged: FhirEntry, resource, patients: dict) -> None:
    subject = resource.subject
    if subject is not None and subject.reference:
        judged.subject_shown = subject.reference
        found = patients.get(subject.reference)
        if isinstance(found, FhirEntry):
            _error(judged, ".subject", f"Its Patient (entry[{found.index}]) has no study ID.")
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
        if ident.system in _study_id_systems():
            judged.study_id = ident.value
        else:
            judged.hold(
                UNKNOWN_PATIENT,
                ".subject.identifier",
                _no_study_id_message().replace("Patient", "subject"),
            )
        return
    _error(judged, ".subject", "Reference a Patient of the Bundle, or give its study ID.")


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


def operation_outcome(issues: list[tuple[str, str, str, str]]) -> dict:
    """An OperationOutcome of (severity, code, expression, diagnostics) issues. The diagnostics
    stay English whatever the request's Accept-Language (issue 23): a laboratory system reads
    them, and the FHIR views answer under translation.override("en") for that reason."""
    return {
        "resourceType": "OperationOutcome",
        "issue": [
            {
                "severity": severity,
                "code": code,
                **({"expression": [expression]} if expression else {}),
                "diagnostics": text,
            }
            for severity, code, expression, text in issues
        ]
        or [{"severity": "information", "code": "informational", "diagnostics": "Nothing."}],
    }


def capability_statement(base_url: str) -> dict:
    """What this server does (GET [base]/metadata)."""
    return {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": "2026-12-02",
        "publisher": "CARTtrack",
        "kind": "instance",
        "software": {"name": "CARTtrack"},
        "implementation": {
            "description": "CARTtrack FHIR R4 endpoint for laboratory results",
            "url": base_url,
        },
        "fhirVersion": "4.0.1",
        "format": ["application/fhir+json", "json"],
        "rest": [
            {
                "mode": "server",
                "documentation": (
                    "POST a Bundle to the base: transaction (all or nothing, answered with a "
                    "transaction-response), batch (entry by entry, batch-response), collection, "
                    "document or message (their monitored Observations). Patients are matched "
                    "by their study-ID identifier only. GET patients/{study_id}/ answers one "
                    "patient's results as a collection Bundle."
                ),
                "security": {
                    "description": "Session or token authentication (Authorization: Token ...)."
                },
                "resource": [
                    {"type": "Observation", "interaction": [{"code": "create"}]},
                    {"type": "Patient", "interaction": [{"code": "read"}]},
                ],
                "interaction": [{"code": "transaction"}, {"code": "batch"}],
            }
        ],
    }
