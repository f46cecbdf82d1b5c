"""Requests that ended in a 500 get a 400 with a message instead (issue 21 finding 5): a NUL
byte in a path, a query or a form field; JSON nested thousands deep or carrying NUL; and the
limit on new dashboard computations per user (429)."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hyp_settings
from hypothesis import strategies as st
from rest_framework.test import APIClient

from analytics.models import RefreshRun
from carttrack.request_safety import json_depth, json_problem
from tests.factories import PatientFactory

pytestmark = pytest.mark.django_db

FUZZ = {"depth": 0, "nul": 0}


@pytest.fixture
def api(clinician):
    client = APIClient()
    client.force_authenticate(clinician)
    return client


@pytest.mark.parametrize(
    "url",
    ["/patients/DEMO-003%00/", "/patients/?q=SYN%00003", "/api/v1/fhir/patients/DEMO-001%00/"],
)
def test_a_nul_byte_in_the_address_is_refused_with_a_message(clinician_client, url):
    response = clinician_client.get(url)
    assert response.status_code == 400
    assert "NUL byte" in response.content.decode()


def test_a_nul_byte_in_a_form_field_is_refused_with_a_message(clinician_client, center):
    response = clinician_client.post(
        "/patients/new/", {"study_id": "AB\x00C", "center": center.pk, "mrn": "M\x00"}
    )
    assert response.status_code == 200  # the form again, with what to fix
    assert "Null characters are not allowed" in response.content.decode()


def _nested(depth: int) -> str:
    return "[" * depth + "]" * depth


@pytest.mark.parametrize("url", ["/api/v1/lab-results/", "/api/v1/fhir/"])
def test_json_nested_5000_deep_is_a_400_not_a_recursion_error(api, url):
    for content_type in ("application/json", "application/fhir+json"):
        if url.endswith("lab-results/") and content_type != "application/json":
            continue
        response = api.post(url, _nested(5000), content_type=content_type)
        assert response.status_code == 400, (url, content_type)
        assert "nested more than 64 levels" in json.dumps(response.json())


def test_json_with_a_nul_character_is_a_400(api, center):
    PatientFactory(center=center, study_id="NUL-1")
    body = json.dumps({"results": [{"study_id": "NUL-1\u0000", "analyte": "cd19"}]})
    response = api.post("/api/v1/lab-results/", body, content_type="application/json")
    assert response.status_code == 400
    assert "NUL character" in json.dumps(response.json())


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=3), children, max_size=3)
    ),
    max_leaves=40,
)


def _true_depth(value) -> int:
    if isinstance(value, list):
        return 1 + max((_true_depth(v) for v in value), default=0)
    if isinstance(value, dict):
        return 1 + max((_true_depth(v) for v in value.values()), default=0)
    return 0


@given(value=_json, wrap=st.integers(min_value=0, max_value=80))
@hyp_settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck))
def test_fuzz_the_depth_scan_equals_the_parsed_depth(value, wrap):
    """The scan (no parsing) gives the nesting json.loads sees, strings with brackets, quotes
    and backslashes included; the limit refuses exactly the documents deeper than 64."""
    FUZZ["depth"] += 1
    text = "[" * wrap + json.dumps(value) + "]" * wrap
    depth = wrap + _true_depth(value)
    assert json_depth(text.encode()) == depth
    problem = json_problem(text.encode())
    has_nul = "\\u0000" in text
    if depth > 64:
        assert problem and "nested" in problem
    elif has_nul:
        assert problem and "NUL" in problem
    else:
        assert problem is None


@given(text=st.text(max_size=20))
@hyp_settings(max_examples=300, deadline=None)
def test_fuzz_a_nul_anywhere_in_a_string_is_found(text):
    FUZZ["nul"] += 1
    body = json.dumps({"value": text}).encode()
    assert (json_problem(body) is not None) == ("\x00" in text)
    assert (json_problem(json.dumps({"v": text}, ensure_ascii=False).encode()) is not None) == (
        "\x00" in text
    )


def test_fuzz_counts():
    print(f"\nfuzz cases: {FUZZ}")


def test_new_dashboard_computations_are_limited_per_user(clinician_client, clinician, settings):
    settings.DASHBOARD_NEW_FILTERS_PER_HOUR = 3
    for _ in range(3):
        RefreshRun.objects.create(cohort_key="x", requested_by=clinician)
    response = clinician_client.get("/dashboard/", {"infusion_year": "", "center": "alpha"})
    assert response.status_code == 429
    assert "the limit is 3" in response.content.decode()
    # An hour later the share is free again.
    RefreshRun.objects.update(
        requested_at=RefreshRun.objects.first().requested_at - timedelta(hours=1, seconds=1)
    )
    response = clinician_client.get("/dashboard/", {"center": "alpha"})
    assert response.status_code == 200
