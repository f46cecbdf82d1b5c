"""The codes and identifiers CARTtrack's FHIR speaks, and the mapping of a sender's codes.

The mapping (`mapping`): a center's local file (FHIR_LOCAL_MAPPING_FILE) first, then the shipped
LOINC entries of `imports/fhir_mapping.json`; it names the analyte of an Observation code and
CARTtrack's unit of a UCUM code. A Patient is matched by its study ID only: the identifier whose
system is the configured study-ID system (FHIR_STUDY_ID_SYSTEM, else `patient_identifier_system`
of the mapping) or CARTtrack's own (STUDY_ID_SYSTEM, as the export writes it); never an MRN or
an SSN. Read by `imports.fhir_read` and `imports.fhir_observation`, written by
`imports.fhir_write`, and used by the other import formats for the shipped LOINC entries.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

from django.conf import settings

from patients import units

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
# Code systems whose codes the product knows to be complete: a code of theirs that the mapping
# does not list is not monitored. A code of any other (local) system may be one the center has
# not mapped yet, so its result is held, not skipped.
STANDARD_SYSTEMS = {"http://loinc.org", "http://snomed.info/sct"}
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


def study_id_system() -> str:
    """The configured identifier system of study IDs ("" when none is)."""
    return getattr(settings, "FHIR_STUDY_ID_SYSTEM", "") or mapping()["patient_identifier_system"]


def study_id_systems() -> set[str]:
    """The identifier systems whose values are study IDs: the configured one and ours."""
    return {s for s in (study_id_system(), STUDY_ID_SYSTEM) if s}


def no_study_id_message() -> str:
    """Why a Patient without a study-ID identifier cannot be matched, naming the setting."""
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


def code_index() -> dict[tuple[str, str], str]:
    """{(system, code): analyte} of the mapping and of CARTtrack's own analyte codes."""
    index: dict[tuple[str, str], str] = {}
    for entry in mapping()["codes"]:
        index.setdefault((entry["system"], entry["code"]), entry["analyte"])
    for code in units.ANALYTES:  # our own code system, as the export writes it
        index[(ANALYTE_SYSTEM, code)] = code
    return index


def analyte_unit(analyte: str, ucum: str) -> str | None:
    """CARTtrack's unit of `analyte` for the UCUM code `ucum`, or None when it does not fit."""
    unit = mapping()["units"].get(ucum)
    if unit == "percent":
        unit = units.ANALYTES[analyte].canonical_unit
        return unit if unit in (units.PERCENT_LYMPHOCYTES, units.PERCENT_CELLS) else None
    if unit is None and ucum in units.UNIT_LABELS:
        unit = ucum  # our own unit code, as the export writes it
    return unit if unit in units.ANALYTES[analyte].units else None
