"""FHIR as it arrives (issue 17, item 2): each Bundle type and Observation status by FHIR's own
semantics, the public fixtures (Synthea, the specification's CBC example), study IDs only from
the configured identifier system. Bundles are built with fhir.resources, answers parsed by it."""

from __future__ import annotations

import json
import time
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest
from fhir.resources.R4B.bundle import Bundle, BundleEntry, BundleEntryRequest
from fhir.resources.R4B.capabilitystatement import CapabilityStatement
from fhir.resources.R4B.diagnosticreport import DiagnosticReport
from fhir.resources.R4B.observation import Observation
from fhir.resources.R4B.operationoutcome import OperationOutcome
from fhir.resources.R4B.patient import Patient as FhirPatient
from rest_framework.test import APIClient

from imports import fhir_codes
from imports.held import held_results_retry
from imports.models import HeldResult, ObservationLink
from monitoring.models import Alert
from patients.models import LabResult, Patient
from tests.factories import InfusionFactory, PatientFactory

URL = "/api/v1/fhir/"
FIXTURES = Path(__file__).resolve().parents[2] / ".." / "shared" / "fixtures" / "fhir"
SYNTHEA = FIXTURES / "synthea_Britany_Reynolds_30d60273-4988-4861-a8af-ad8d71ecda1d.json"
CBC = FIXTURES / "fhirtc_r4_diagnosticreport-example.json"
STUDY_SYSTEM = "urn:oid:1.2.276.0.99.2"
LAB_IDS = "urn:oid:1.2.276.0.99.7"
CD19 = {"system": "urn:oid:1.2.276.0.99.1", "code": "BZ19-ABS", "display": "B cells CD19+ abs"}
ALC = {"system": "http://loinc.org", "code": "731-0"}
HEMOGLOBIN = {"system": "http://loinc.org", "code": "718-7", "display": "Hemoglobin"}
WHEN = "2025-03-08T08:00:00+01:00"


@pytest.fixture
def configured(tmp_path, settings):
    """The center's study-ID system and its own PB B-cell code."""
    path = tmp_path / "local.json"
    path.write_text(json.dumps({"codes": [{**CD19, "analyte": "pb_bcell_abs"}]}))
    settings.FHIR_LOCAL_MAPPING_FILE = str(path)
    settings.FHIR_STUDY_ID_SYSTEM = STUDY_SYSTEM
    fhir_codes.mapping.cache_clear()
    yield
    fhir_codes.mapping.cache_clear()


@pytest.fixture
def patient(clinician):
    registered = PatientFactory(center=clinician.profile.center, study_id="CT-0042")
    InfusionFactory(patient=registered, infusion_date=date(2025, 3, 1))
    return registered


def obs(code, value=None, unit="/uL", *, status="final", when=WHEN, ident=None, **extra):
    resource = {
        "status": status,
        "code": {"coding": [code]},
        "subject": {"reference": "urn:uuid:patient"},
        **({"effectiveDateTime": when} if when else {}),
        **({"identifier": [{"system": LAB_IDS, "value": ident}]} if ident else {}),
        **extra,
    }
    if value is not None:
        resource["valueQuantity"] = {"value": value, "system": fhir_codes.UCUM, "code": unit}
    return Observation(**resource)


def bundle(kind: str, *resources, study_id="CT-0042", identifiers=None) -> dict:
    person = FhirPatient(
        identifier=identifiers
        or [
            {"system": "urn:oid:1.2.276.0.99.9", "value": "MRN4711"},
            {"system": STUDY_SYSTEM, "value": study_id},
        ],
        gender="female",
    )
    entries = [BundleEntry(fullUrl="urn:uuid:patient", resource=person)]
    for i, resource in enumerate(resources):
        entries.append(BundleEntry(fullUrl=f"urn:uuid:entry-{i}", resource=resource))
    if kind in ("transaction", "batch"):
        for entry in entries:
            kind_ = entry.resource.get_resource_type()
            entry.request = BundleEntryRequest(method="POST", url=kind_)
    return json.loads(Bundle(type=kind, entry=entries).model_dump_json())


def post(client, body):
    return client.post(URL, json.dumps(body), content_type="application/fhir+json")


def outcome_of(response) -> list[tuple[str, str, str]]:
    assert response["Content-Type"].startswith("application/fhir+json")
    parsed = OperationOutcome.model_validate(response.json())
    return [(i.severity, (i.expression or [""])[0], i.diagnostics) for i in parsed.issue]


def response_bundle(response, kind: str) -> Bundle:
    assert response.status_code == 200, response.json()
    assert response["Content-Type"].startswith("application/fhir+json")
    parsed = Bundle.model_validate(response.json())
    assert parsed.type == kind
    return parsed


def test_a_transaction_is_all_or_nothing_and_answered_entry_for_entry(
    lab_system, configured, patient, frozen_now
):
    good = obs(CD19, 0, ident="r-1")
    above = Observation(
        status="final",
        code={"coding": [ALC]},
        subject={"reference": "urn:uuid:patient"},
        effectiveDateTime=WHEN,
        valueQuantity={"value": 5, "comparator": ">", "code": "10*9/L", "system": fhir_codes.UCUM},
    )
    refused = post(lab_system, bundle("transaction", good, above))
    assert refused.status_code == 400
    errors = [(place, text) for severity, place, text in outcome_of(refused) if severity == "error"]
    assert errors[0][0] == "entry[2].resource.valueQuantity.comparator"
    assert "'>'" in errors[0][1] and "cannot be stored" in errors[0][1]
    assert not LabResult.objects.exists()

    answer = response_bundle(post(lab_system, bundle("transaction", good)), "transaction-response")
    assert [e.response.status for e in answer.entry] == ["200 OK", "201 Created"]
    stored = LabResult.objects.get()
    assert answer.entry[1].response.location == f"Observation/lab-{stored.pk}"
    assert ObservationLink.objects.get().lab_result == stored  # the identifier is kept


def test_a_batch_is_judged_entry_by_entry(lab_system, configured, patient, frozen_now):
    alc_in_wrong_place = obs(ALC, 0.5, "10*9/L", when="2025-03-08")  # no time, no offset
    negative = obs(CD19, -3, when="2025-03-09T08:00:00+01:00")  # refused by the import checks
    answer = response_bundle(
        post(lab_system, bundle("batch", obs(CD19, 0), alc_in_wrong_place, negative)),
        "batch-response",
    )
    statuses = [e.response.status for e in answer.entry]
    assert statuses == ["200 OK", "201 Created", "400 Bad Request", "400 Bad Request"]
    assert "UTC offset" in answer.entry[2].response.outcome.issue[0].diagnostics
    assert answer.entry[3].response.outcome.issue[0].severity == "error"
    assert LabResult.objects.get().canonical_value == 0


def test_what_is_not_monitored_is_skipped_and_counted_never_an_error(
    lab_system, configured, patient, frozen_now
):
    """The issue's case: CD19 and lymphocytes plus a hemoglobin was a 400; the two counts are
    stored and the hemoglobin is reported as information."""
    response = post(
        lab_system,
        bundle("collection", obs(CD19, 12), obs(ALC, 0.4, "10*3/uL"), obs(HEMOGLOBIN, 9, "g/dL")),
    )
    assert response.status_code == 201, response.json()
    assert sorted(LabResult.objects.values_list("analyte", flat=True)) == ["alc", "pb_bcell_abs"]
    issues = outcome_of(response)
    assert {severity for severity, _place, _text in issues} == {"information"}
    assert any("Skipped 1 × Observation http://loinc.org|718-7" in t for _s, _p, t in issues)


def test_statuses_and_absent_values_are_reported_and_kept_out(
    lab_system, configured, patient, frozen_now
):
    kept_out = [
        obs(CD19, 5, status="preliminary"),
        obs(CD19, 5, status="registered"),
        obs(CD19, 5, status="cancelled"),
        obs(CD19, dataAbsentReason={"text": "specimen clotted"}),
    ]
    response = post(lab_system, bundle("collection", *kept_out))
    assert response.status_code == 200, response.json()
    warnings = {p: t for s, p, t in outcome_of(response) if s == "warning"}
    assert "'preliminary'" in warnings["entry[1].resource.status"]
    assert "'cancelled'" in warnings["entry[3].resource.status"]
    assert "specimen clotted" in warnings["entry[4].resource.dataAbsentReason"]
    assert not LabResult.objects.exists()


def test_corrections_replace_and_entered_in_error_withdraws_by_identifier(
    lab_system, configured, patient, frozen_now
):
    aplasia = obs(CD19, 0, when="2025-03-08T08:00:00+01:00")
    regenerated = obs(CD19, 12, when="2025-03-15T08:00:00+01:00", ident="r-7")
    assert post(lab_system, bundle("collection", aplasia, regenerated)).status_code == 201
    stored = LabResult.objects.get(value=12)
    alert = Alert.objects.get(patient=patient, rule="early_regeneration")
    assert alert.status == "open"

    corrected = obs(CD19, 0, when="2025-03-15T08:00:00+01:00", status="corrected", ident="r-7")
    answer = post(lab_system, bundle("collection", corrected))
    assert answer.status_code == 201, answer.json()
    stored.refresh_from_db()
    assert stored.value == 0
    alert.refresh_from_db()
    assert alert.status == "withdrawn"  # the correction re-evaluated the patient's alerts
    assert [h.value for h in stored.history.order_by("history_date")] == [12, 0]
    assert "corrected" in stored.history.latest().history_change_reason

    unknown = post(
        lab_system, bundle("collection", obs(CD19, status="entered-in-error", ident="x"))
    )
    assert any("nothing was withdrawn" in t for s, _p, t in outcome_of(unknown) if s == "warning")
    assert LabResult.objects.filter(pk=stored.pk).exists()

    withdrawn = post(
        lab_system, bundle("collection", obs(CD19, status="entered-in-error", ident="r-7"))
    )
    assert withdrawn.status_code == 200, withdrawn.json()
    assert not LabResult.objects.filter(pk=stored.pk).exists()
    assert LabResult.objects.count() == 1  # the aplasia count stays
    assert LabResult.history.filter(id=stored.pk, history_type="-").exists()  # kept in history


def test_comparators_mm3_and_the_reports_time(lab_system, configured, patient, frozen_now):
    below = obs(CD19, 5, when=None)
    below.valueQuantity.comparator = "<="
    alc = obs(ALC, 0.6, "10*3/mm3", when=None)
    per_mm3 = obs(CD19, 7, "/mm3", when="2025-03-09T08:00:00+01:00")
    report = DiagnosticReport(
        status="final",
        code={"text": "lymphocyte subsets"},
        effectiveDateTime="2025-03-08T09:30:00+01:00",
        result=[{"reference": "urn:uuid:entry-0"}, {"reference": "urn:uuid:entry-1"}],
    )
    response = post(lab_system, bundle("collection", below, alc, per_mm3, report))
    assert response.status_code == 201, response.json()
    rows = {
        (r.analyte, r.collected_at.isoformat()): (r.value, r.unit, r.qualifier, r.canonical_value)
        for r in LabResult.objects.all()
    }
    assert rows == {
        ("pb_bcell_abs", "2025-03-08T08:30:00+00:00"): (None, "cells/uL", "below_lod", None),
        ("alc", "2025-03-08T08:30:00+00:00"): (Decimal("0.6"), "10^9/L", "", Decimal(600)),
        ("pb_bcell_abs", "2025-03-09T07:00:00+00:00"): (Decimal(7), "cells/uL", "", Decimal(7)),
    }


def test_a_study_id_is_never_made_of_another_identifier(lab_system, clinician, settings):
    settings.FHIR_STUDY_ID_SYSTEM = ""
    ssn_only = [{"system": "http://hl7.org/fhir/sid/us-ssn", "value": "999-34-2070"}]
    response = post(lab_system, bundle("collection", identifiers=ssn_only))
    assert response.status_code == 400
    [(place, text)] = [(p, t) for s, p, t in outcome_of(response) if s == "error"]
    assert place == "entry[0].resource.identifier" and "FHIR_STUDY_ID_SYSTEM" in text
    assert not Patient.objects.exists()

    settings.FHIR_STUDY_ID_SYSTEM = STUDY_SYSTEM
    response = post(lab_system, bundle("collection", study_id="CT-0777"))  # MRN listed first
    assert response.status_code == 200, response.json()
    assert list(Patient.objects.values_list("study_id", flat=True)) == ["CT-0777"]


def test_answers_and_errors_are_fhir_and_metadata_is_a_capability_statement(
    lab_system, stranger, configured, patient
):
    metadata = APIClient().get(URL + "metadata")
    assert metadata.status_code == 200
    assert metadata["Content-Type"] == "application/fhir+json"
    assert CapabilityStatement.model_validate(metadata.json()).fhirVersion == "4.0.1"

    anonymous = APIClient().post(URL, {}, format="json")
    assert anonymous.status_code in (401, 403)
    assert outcome_of(anonymous)[0][0] == "error"
    other = APIClient()
    other.force_authenticate(stranger)
    missing = other.get(f"{URL}patients/CT-0042/")
    assert missing.status_code == 404 and outcome_of(missing)[0][0] == "error"
    not_bundle = post(lab_system, {"resourceType": "Observation"})
    assert not_bundle.status_code == 400 and "Bundle" in outcome_of(not_bundle)[0][2]
    searchset = post(lab_system, {"resourceType": "Bundle", "type": "searchset"})
    assert searchset.status_code == 400 and "transaction" in outcome_of(searchset)[0][2]


def test_the_synthea_bundle_imports_its_monitored_values_and_reports_the_rest_in_seconds(
    lab_system, configured, clinician, frozen_now
):
    """The Synthea R4 patient (282 entries) with a study ID given and registered first. It has
    no monitored analyte of its own, so one lymphocyte count is added to its last encounter's
    entries; everything else is answered 200 with an informational outcome."""
    data = json.loads(SYNTHEA.read_text())
    assert len(data["entry"]) == 282
    person = data["entry"][0]
    person["resource"]["identifier"].append({"system": STUDY_SYSTEM, "value": "SYN-0001"})
    PatientFactory(center=clinician.profile.center, study_id="SYN-0001")
    lymphocytes = obs(ALC, 1.8, "10*3/uL", when="2019-05-01T10:00:00+00:00")
    lymphocytes.subject.reference = person["fullUrl"]
    data["entry"].append(
        {
            "fullUrl": "urn:uuid:added-alc",
            "resource": json.loads(lymphocytes.model_dump_json()),
            "request": {"method": "POST", "url": "Observation"},
        }
    )
    started = time.monotonic()
    response = post(lab_system, data)
    elapsed = time.monotonic() - started
    answer = response_bundle(response, "transaction-response")
    assert elapsed < 10, elapsed
    statuses = [e.response.status for e in answer.entry]
    assert len(statuses) == 283 and statuses.count("201 Created") == 1
    assert statuses.count("200 OK") == 282
    severities = {
        issue.severity
        for e in answer.entry
        if e.response.outcome
        for issue in e.response.outcome.issue
    }
    assert severities == {"information"}
    assert LabResult.objects.get().canonical_value == 1800
    assert Patient.objects.count() == 1  # no patient made of the Synthea MRN or SSN


def test_the_specification_cbc_report_is_accepted_with_non_monitored_results_reported(
    lab_system, configured, patient, frozen_now
):
    """The FHIR CBC example (collection): 17 results of Patient/pat2, which is not in the Bundle
    and names no study ID, so its lymphocyte count (731-0) cannot be placed and is held; the 16
    others are not monitored and are counted."""
    response = post(lab_system, json.loads(CBC.read_text()))
    assert response.status_code == 200, response.json()
    issues = outcome_of(response)
    assert not [t for s, _p, t in issues if s == "error"]
    skipped = [t for s, _p, t in issues if t.startswith("Skipped")]
    assert len(skipped) == 17  # 16 Observation codes and the DiagnosticReport itself
    warnings = {p: t for s, p, t in issues if s == "warning"}
    assert set(warnings) == {"entry[11].resource.subject", "entry[11].resource"}
    assert "Patient/pat2" in warnings["entry[11].resource.subject"]
    held = HeldResult.objects.get()
    assert (
        "held results" in warnings["entry[11].resource"]
        and str(held.pk) in warnings["entry[11].resource"]
    )
    assert (held.source, held.reason, held.code, held.value, held.unit) == (
        "fhir",
        "unknown_patient",
        "731-0",
        "0.9",
        "10*9/L",
    )
    assert held.collected_at_text == "2011-03-04T08:30:00+11:00"  # the report's time
    assert held.center == patient.center and not LabResult.objects.exists()


def test_a_result_for_an_unregistered_patient_is_held_and_imported_once_registered(
    lab_system, configured, clinician, frozen_now
):
    """Nothing a laboratory sends is dropped: a result naming a study ID that is not registered
    (by the subject's identifier, no Patient in the Bundle) waits in the held results."""
    result = obs(CD19, 0, when=WHEN)
    result.subject = {"identifier": {"system": STUDY_SYSTEM, "value": "CT-0100"}}
    body = json.loads(Bundle(type="collection", entry=[{"resource": result}]).model_dump_json())
    response = post(lab_system, body)
    assert response.status_code == 200, response.json()
    held = HeldResult.objects.get()
    assert (held.identifier, held.reason, held.state) == ("CT-0100", "unknown_patient", "held")
    PatientFactory(center=clinician.profile.center, study_id="CT-0100")
    held_results_retry(center=clinician.profile.center)
    held.refresh_from_db()
    assert held.state == "imported", held.reason_text
    assert LabResult.objects.get().patient.study_id == "CT-0100"
