"""The FHIR resources CARTtrack writes: one patient's results as a Bundle (type collection,
pseudonymous: the study ID only), an OperationOutcome, and the server's CapabilityStatement."""

from __future__ import annotations

import json

from fhir.resources.R4B.bundle import Bundle

from imports.fhir_codes import (
    ANALYTE_SYSTEM,
    QUALIFIER_SYSTEM,
    STUDY_ID_SYSTEM,
    TO_UCUM,
    UCUM,
    mapping,
)
from patients import units
from patients.models import Patient


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
