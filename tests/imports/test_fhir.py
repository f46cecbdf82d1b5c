"""FHIR R4: a Bundle of Observations with their Patient in; one patient's results out.

Codes map through a configurable file (LOINC entries whose long names are known precisely, a
center's local codes first); an unknown code is reported with its place, never guessed. Answers
and errors are FHIR resources (OperationOutcome, Bundle) in application/fhir+json; the FHIR
semantics of each Bundle type and status are in test_fhir_semantics.py."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
from rest_framework.test import APIClient

from imports import fhir_codes
from imports.models import HeldResult
from monitoring.models import Alert
from patients.models import LabResult, Patient
from tests.factories import InfusionFactory, PatientFactory

URL = "/api/v1/fhir/"
LOCAL_CD19 = {"system": "urn:oid:1.2.276.0.99.1", "code": "BZ19-ABS"}


@pytest.fixture
def local_mapping(tmp_path, settings):
    """The center maps its own PB B-cell code (there is no default LOINC entry for it)."""
    path = tmp_path / "local.json"
    path.write_text(
        json.dumps(
            {
                "patient_identifier_system": "urn:oid:1.2.276.0.99.2",
                "codes": [
                    {**LOCAL_CD19, "display": "B cells CD19+ abs", "analyte": "pb_bcell_abs"}
                ],
            }
        )
    )
    settings.FHIR_LOCAL_MAPPING_FILE = str(path)
    fhir_codes.mapping.cache_clear()
    yield
    fhir_codes.mapping.cache_clear()


def issues(response) -> list[tuple[str, str, str]]:
    """(severity, expression, diagnostics) of an OperationOutcome answer."""
    body = response.json()
    assert body["resourceType"] == "OperationOutcome", body
    assert response["Content-Type"].startswith("application/fhir+json")
    return [
        (i["severity"], (i.get("expression") or [""])[0], i["diagnostics"]) for i in body["issue"]
    ]


def errors(response) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for severity, place, text in issues(response):
        if severity == "error":
            out.setdefault(place, []).append(text)
    return out


def observation(code: dict, when: str, quantity: dict | None = None, **extra) -> dict:
    resource = {
        "resourceType": "Observation",
        "status": "final",
        "code": {"coding": [code]},
        "subject": {"reference": "urn:uuid:p1"},
        "effectiveDateTime": when,
        **extra,
    }
    if quantity is not None:
        resource["valueQuantity"] = {"system": fhir_codes.UCUM, **quantity}
    return {"resource": resource}


def bundle(*observations) -> dict:
    return {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [
            {
                "fullUrl": "urn:uuid:p1",
                "resource": {
                    "resourceType": "Patient",
                    "identifier": [
                        {"system": "urn:oid:1.2.276.0.99.9", "value": "MRN-should-not-be-used"},
                        {"system": "urn:oid:1.2.276.0.99.2", "value": "CT-FHIR"},
                    ],
                    "name": [{"family": "Never-Stored"}],
                    "gender": "female",
                    "birthDate": "1991-02-03",
                },
            },
            *observations,
        ],
    }


def test_a_bundle_creates_its_patient_by_identifier_and_maps_loinc_and_local_codes(
    lab_system, clinician, local_mapping, frozen_now
):
    patient = PatientFactory(center=clinician.profile.center, study_id="CT-FHIR")
    InfusionFactory(patient=patient, infusion_date=date(2025, 3, 1))
    response = lab_system.post(
        URL,
        bundle(
            observation(
                LOCAL_CD19,
                "2025-03-08T08:00:00+01:00",
                {"value": 5, "comparator": "<", "code": "/uL"},
            ),
            observation(
                {"system": "http://loinc.org", "code": "731-0"},
                "2025-03-08T08:00:00+01:00",
                {"value": 0.45, "code": "10*3/uL"},
            ),
            observation(LOCAL_CD19, "2025-03-31T08:00:00+02:00", {"value": 12, "code": "/uL"}),
        ),
        format="json",
    )
    assert response.status_code == 201, response.json()
    assert "Stored 3 result(s)" in issues(response)[0][2]
    assert LabResult.objects.values("collected_at").distinct().count() == 2
    alc = LabResult.objects.get(analyte="alc")
    assert (alc.value, alc.unit, alc.canonical_value) == (Decimal("0.45"), "10^9/L", Decimal(450))
    below = LabResult.objects.get(analyte="pb_bcell_abs", qualifier="below_lod")
    assert below.collected_at == datetime(2025, 3, 8, 7, tzinfo=UTC)
    assert Alert.objects.get(patient=patient).rule == "early_regeneration"


def test_a_new_patient_is_created_without_a_name(lab_system, local_mapping, frozen_now):
    response = lab_system.post(
        URL,
        bundle(observation(LOCAL_CD19, "2025-03-08T08:00:00+01:00", {"value": 0, "code": "/uL"})),
        format="json",
    )
    assert response.status_code == 201, response.json()
    patient = Patient.objects.get(study_id="CT-FHIR")
    assert (patient.full_name, patient.mrn, patient.sex) == ("", "", "F")
    assert patient.date_of_birth == date(1991, 2, 3)


def test_unknown_codes_and_units_are_reported_by_place_never_guessed(
    lab_system, clinician, local_mapping, frozen_now
):
    """Changed: a local code the mapping lacks and a unit that does not fit were errors that
    refused the whole Bundle; now they cannot be placed and are held with the reason (a
    warning), while a time without an offset is still an error that refuses the Bundle."""
    PatientFactory(center=clinician.profile.center, study_id="CT-FHIR")
    unmapped = {"system": "urn:oid:1.2.276.0.99.1", "code": "BZ20-ABS"}
    held = [
        observation(unmapped, "2025-03-08T08:00:00+01:00", {"value": 3, "code": "/uL"}),
        observation(
            {"system": "http://loinc.org", "code": "26474-7"},
            "2025-03-08T08:00:00+01:00",
            {"value": 3, "code": "mg/dL"},
        ),
    ]
    undated = observation(
        {"system": "http://loinc.org", "code": "731-0"},
        "2025-03-08",
        {"value": 1, "code": "10*9/L"},
    )
    response = lab_system.post(URL, bundle(*held, undated), format="json")
    assert response.status_code == 400
    assert "UTC offset" in errors(response)["entry[3].resource.effectiveDateTime"][0]
    assert not LabResult.objects.exists()

    response = lab_system.post(URL, bundle(*held), format="json")
    assert response.status_code == 200, response.json()
    warnings = {place: text for severity, place, text in issues(response) if severity == "warning"}
    assert "Unknown code urn:oid:1.2.276.0.99.1|BZ20-ABS" in warnings["entry[1].resource.code"]
    assert "mg/dL" in warnings["entry[2].resource.valueQuantity.code"]
    assert not LabResult.objects.exists()
    reasons = sorted(HeldResult.objects.values_list("reason", "code"))
    assert reasons == [("unmapped_code", "BZ20-ABS"), ("unmapped_unit", "26474-7")]


def test_a_malformed_bundle_is_a_400_naming_the_field(lab_system):
    response = lab_system.post(
        URL,
        {
            "resourceType": "Bundle",
            "type": "collection",
            "entry": [
                {
                    "resource": {
                        "resourceType": "Observation",
                        "status": "final",
                        "code": {},
                        "valueQuantity": {"value": "lots"},
                    }
                }
            ],
        },
        format="json",
    )
    assert response.status_code == 400
    assert any("valueQuantity" in key for key in errors(response))


def test_the_export_is_a_valid_bundle_that_imports_back_to_the_same_results(
    lab_system, clinician, frozen_now
):
    patient = PatientFactory(center=clinician.profile.center, study_id="CT-OUT", full_name="Secret")
    InfusionFactory(patient=patient, infusion_date=date(2025, 3, 1))
    batch = {
        "samples": [
            {
                "study_id": "CT-OUT",
                "collected_at": "2025-03-08T08:00:00+01:00",
                "values": [
                    {"analyte": "pb_bcell_abs", "qualifier": "undetectable", "unit": "cells/uL"},
                    {"analyte": "alc", "value": "0.9", "unit": "10^9/L"},
                    {"analyte": "pb_bcell_pct", "value": "0", "unit": "% lymphocytes"},
                ],
            }
        ]
    }
    assert lab_system.post("/api/v1/lab-results/", batch, format="json").status_code == 201
    before = sorted(
        LabResult.objects.values_list("analyte", "value", "unit", "qualifier", "collected_at")
    )
    exported = lab_system.get("/api/v1/fhir/patients/CT-OUT/")
    assert exported.status_code == 200
    assert exported["Content-Type"] == "application/fhir+json"
    document = exported.json()
    assert "Secret" not in json.dumps(document)
    codes = {
        e["resource"]["code"]["coding"][0]["code"]
        for e in document["entry"]
        if e["resource"]["resourceType"] == "Observation"
    }
    assert "26474-7" in codes  # ALC with its LOINC code first (method not stated)
    LabResult.objects.all().delete()
    again = lab_system.post(URL, document, content_type="application/fhir+json")
    assert again.status_code == 201, again.json()
    assert again["Content-Type"] == "application/fhir+json"
    after = sorted(
        LabResult.objects.values_list("analyte", "value", "unit", "qualifier", "collected_at")
    )
    assert after == before


def test_the_export_is_only_for_patients_one_sees(stranger, lab_system, clinician):
    PatientFactory(center=clinician.profile.center, study_id="CT-MINE")
    other = APIClient()
    other.force_authenticate(stranger)
    assert other.get("/api/v1/fhir/patients/CT-MINE/").status_code == 404
    assert APIClient().get("/api/v1/fhir/patients/CT-MINE/").status_code in (401, 403)


def test_an_unusual_value_is_kept_only_once_the_lab_confirms_it_with_the_extension(
    lab_system, clinician, local_mapping, frozen_now
):
    """CLINICAL.md section 2: an ALC above 50 x10^9/L is kept only on a second look; a FHIR
    sender says so with the CARTtrack extension on the Observation. Above the hard limit
    (1,000) no confirmation helps. (Changed: the study-ID system is configured here; the Bundle
    used to be read by its first identifier, the MRN, which was the bug of issue 17.)"""
    patient = PatientFactory(center=clinician.profile.center, study_id="CT-FHIR")
    InfusionFactory(patient=patient, infusion_date=date(2025, 3, 1))
    alc = {"system": "http://loinc.org", "code": "731-0"}
    confirmed = {"url": fhir_codes.CONFIRMED_EXTENSION, "valueBoolean": True}

    def send(value, *extension):
        extra = {"extension": list(extension)} if extension else {}
        quantity = {"value": value, "code": "10*9/L"}
        return lab_system.post(
            URL,
            bundle(observation(alc, "2025-03-08T08:00:00+01:00", quantity, **extra)),
            format="json",
        )

    first = send(60)
    assert first.status_code == 400
    [(place, [message])] = errors(first).items()
    assert place.startswith("entry[1].resource")
    assert fhir_codes.CONFIRMED_EXTENSION in message and "valueBoolean" in message
    assert not LabResult.objects.exists()

    refused = send(60, {"url": fhir_codes.CONFIRMED_EXTENSION, "valueBoolean": False})
    assert refused.status_code == 400
    malformed = send(60, {"url": fhir_codes.CONFIRMED_EXTENSION, "valueString": "yes"})
    assert malformed.status_code == 400
    assert "valueBoolean" in errors(malformed)["entry[1].resource.extension"][0]

    hard = send(1_001, confirmed)  # the hard limit
    assert hard.status_code == 400
    assert fhir_codes.CONFIRMED_EXTENSION not in json.dumps(hard.json())  # nothing to confirm
    second = send(60, confirmed)
    assert second.status_code == 201, second.json()
    kept = LabResult.objects.get()
    assert (kept.value, kept.unit, kept.canonical_value) == (Decimal(60), "10^9/L", 60_000)
    assert kept.plausibility_confirmed and kept.plausibility_confirmed_by == clinician
    assert "50" in kept.plausibility_warning


def test_a_bundle_naming_another_centers_patient_says_so(
    lab_system, other_center, local_mapping, frozen_now
):
    PatientFactory(center=other_center, study_id="CT-FHIR")
    response = lab_system.post(
        URL,
        bundle(observation(LOCAL_CD19, "2025-03-08T08:00:00+01:00", {"value": 0, "code": "/uL"})),
        format="json",
    )
    assert response.status_code == 400
    text = json.dumps(response.json())
    assert "cannot be used for a new patient here" in text
    assert "already used" not in text and "another center" not in text  # never confirms it
    assert not LabResult.objects.exists()
