"""schemathesis against the OpenAPI schema, in-process through the WSGI application: positive
and negative cases for every operation; zero server errors, answers of the documented shape, and
no half-saved batch (lab result rows counted before and after each call)."""

from __future__ import annotations

from datetime import date

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from hypothesis import HealthCheck, given, settings
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient
from schemathesis import GenerationMode

from patients.models import LabResult
from tests.factories import InfusionFactory, PatientFactory
from tests.fuzz_counts import record

EXAMPLES_PER_MODE = 50
pytestmark = pytest.mark.usefixtures("frozen_now")


@pytest.fixture
def api(clinician, center):
    for study_id in ("CT-0001", "ct-0002", "0"):
        patient = PatientFactory(center=center, study_id=study_id)
        InfusionFactory(patient=patient, infusion_date=date(2025, 3, 1))
    token = Token.objects.create(user=clinician).key
    client = APIClient()
    client.force_authenticate(clinician)
    document = client.get("/api/schema/?format=json").json()
    schema = schemathesis.openapi.from_dict(document)
    schema.app = get_wsgi_application()
    # As Django's test client does: the WSGI handler must not close the test's connection (and
    # with it the transaction that holds this test's data) at the end of each request.
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        yield schema, {"Authorization": f"Token {token}"}
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)


def _check(case, auth, statuses) -> None:
    before = LabResult.objects.count()
    # The in-process WSGI transport does not decompress: ask for the body as it is (the pages
    # are gzip-compressed for clients that accept it).
    headers = {**(case.headers or {}), **auth, "Accept-Encoding": "identity"}
    response = case.call(headers=headers)
    statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
    assert response.status_code < 500, (case.as_curl_command(), response.text[:500])
    content_type = [str(v) for k, v in response.headers.items() if k.lower() == "content-type"]
    is_json = "json" in " ".join(content_type)
    body = response.json() if is_json and response.content else {}
    saved = LabResult.objects.count() - before
    if "/fhir/" in case.path:  # FHIR answers FHIR resources (imports/api/fhir_views.py)
        _check_fhir(response, body, saved)
    elif response.status_code == 201:
        assert saved == body["saved"]
    else:
        assert saved == 0, (response.status_code, body)
        if response.status_code >= 400:
            assert is_json and isinstance(body.get("detail"), str), response.text[:300]


def _check_fhir(response, body: dict, saved: int) -> None:
    """Errors are OperationOutcome resources and save nothing; an answer counts what it stored."""
    if response.status_code >= 400:
        assert saved == 0, (response.status_code, body)
        assert body.get("resourceType") == "OperationOutcome", response.text[:300]
        assert all(i["severity"] == "error" for i in body["issue"][:1]), body
    elif body.get("resourceType") == "OperationOutcome" and response.status_code in (200, 201):
        first = body["issue"][0]["diagnostics"]
        assert first.startswith(f"Stored {saved} result(s)") or saved == 0, (first, saved)
    elif body.get("resourceType") == "Bundle" and body.get("type", "").endswith("-response"):
        created = sum(e["response"]["status"].startswith("201") for e in body["entry"])
        assert created == saved, (created, saved)


def test_every_operation_answers_without_a_server_error_and_saves_all_or_nothing(api):
    schema, auth = api
    tried: dict[str, int] = {}
    statuses: dict[int, int] = {}

    def fuzz(label, strategy):
        tried[label] = 0

        @settings(
            max_examples=EXAMPLES_PER_MODE,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        @given(case=strategy)
        def call(case):
            tried[label] += 1
            _check(case, auth, statuses)

        call()

    for result in schema.get_all_operations():
        operation = result.ok()
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            fuzz(f"{operation.label} ({mode.value})", operation.as_strategy(generation_mode=mode))
    total = sum(tried.values())
    record(
        "schemathesis_api",
        total,
        operations=len(tried) // 2,
        **{f"status_{code}": n for code, n in sorted(statuses.items())},
    )
    assert total >= 4 * 20, tried
