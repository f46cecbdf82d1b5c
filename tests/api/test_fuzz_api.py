"""Hypothesis over every API write and query parameter: realistic batches mixed with hostile
text. Zero server errors, answers of the one JSON shape, all-or-nothing batches (rows counted)."""

from __future__ import annotations

from datetime import date, datetime

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from patients import units
from patients.models import LabResult
from tests.conftest import token_client
from tests.factories import InfusionFactory, PatientFactory
from tests.fuzz_counts import record
from tests.fuzz_strategies import (
    analytes,
    numbers_as_typed,
    qualifiers,
    typed_text,
    unit_codes,
)

pytestmark = pytest.mark.usefixtures("frozen_now")
FUZZ = settings(
    max_examples=150,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)

times = st.one_of(
    st.sampled_from(
        [
            "2025-03-15T08:30:00+01:00",
            "2025-04-14T23:30:00",
            "2025-04-15",
            "2025-03-30T02:30",
            "2025-10-26T02:30",
            "2024-06-01T23:30:00+08:00",
            "0001-01-01T00:00:00+05:00",
            "9999-12-31T23:59:59-05:00",
            "2030-01-01T00:00:00Z",
        ]
    ),
    typed_text,
)
value_entry = st.fixed_dictionaries(
    {"analyte": st.one_of(analytes, typed_text), "unit": unit_codes},
    optional={
        "value": st.one_of(
            numbers_as_typed,
            st.none(),
            st.integers(),
            st.floats(allow_nan=False, allow_infinity=False),
            st.booleans(),
            st.lists(st.none()),
        ),
        "qualifier": qualifiers,
        "confirmed": st.one_of(st.booleans(), typed_text),
        "method": typed_text,
    },
)
sample = st.fixed_dictionaries(
    {
        "study_id": st.one_of(
            st.sampled_from(["CT-0001", "CT-0002", "ct-0001", "NOPE"]), typed_text
        ),
        "collected_at": times,
        "values": st.lists(value_entry, min_size=0, max_size=3),
    }
)
# Mostly-valid samples, so that fuzzing also reaches the clinical checks and the saving.
good_value = analytes.flatmap(
    lambda code: st.fixed_dictionaries(
        {
            "analyte": st.just(code),
            "unit": st.sampled_from(units.ANALYTES[code].units),
            "value": st.sampled_from(["0", "0,9", "0.012", "0,5", "1", "15", "3000"]),
        },
        optional={"confirmed": st.booleans()},
    )
)
good_sample = st.fixed_dictionaries(
    {
        "study_id": st.sampled_from(["CT-0001", "CT-0002"]),
        "collected_at": st.datetimes(
            min_value=datetime(2025, 3, 2), max_value=datetime(2025, 10, 31)
        ).flatmap(
            lambda moment: st.sampled_from(
                [moment.isoformat(), moment.isoformat() + "+01:00", moment.date().isoformat()]
            )
        ),
        "values": st.lists(good_value, min_size=1, max_size=3, unique_by=lambda v: v["analyte"]),
    }
)
batch = st.one_of(
    st.fixed_dictionaries({"samples": st.lists(good_sample, min_size=1, max_size=2)}),
    st.fixed_dictionaries({"samples": st.lists(st.one_of(good_sample, sample), max_size=3)}),
    st.dictionaries(typed_text, typed_text, max_size=2),
    st.lists(st.integers(), max_size=2),
)


@pytest.fixture
def lab_system(clinician, center):
    for study_id in ("CT-0001", "CT-0002"):
        InfusionFactory(
            patient=PatientFactory(center=center, study_id=study_id), infusion_date=date(2025, 3, 1)
        )
    return token_client(clinician)


def test_any_batch_is_saved_whole_or_refused_whole_never_a_server_error(lab_system):
    outcome = {"cases": 0, "saved_batches": 0, "refused": 0}

    @FUZZ
    @given(body=batch)
    def post(body):
        outcome["cases"] += 1
        before = LabResult.objects.count()
        response = lab_system.post("/api/v1/lab-results/", body, format="json")
        after = LabResult.objects.count()
        assert response.status_code in (201, 400), response.content[:300]
        answer = response.json()
        if response.status_code == 201:
            outcome["saved_batches"] += 1
            assert after - before == answer["saved"] == len(answer["ids"])
            assert answer["saved"] == sum(len(s["values"]) for s in body["samples"])
        else:
            outcome["refused"] += 1
            assert after == before
            assert isinstance(answer["detail"], str) and answer["errors"]

    post()
    record(
        "hypothesis_api_lab_batch",
        outcome["cases"],
        **{k: v for k, v in outcome.items() if k != "cases"},
    )
    assert outcome["cases"] >= 100 and outcome["saved_batches"] > 0 and outcome["refused"] > 0


def test_any_query_of_the_alert_list_is_answered_or_refused_in_json(lab_system):
    cases = {"n": 0}

    @FUZZ
    @given(
        query=st.dictionaries(
            st.one_of(st.sampled_from(["status", "severity", "page", "format"]), typed_text),
            typed_text,
            max_size=3,
        )
    )
    def get(query):
        cases["n"] += 1
        response = lab_system.get("/api/v1/alerts/", query)
        assert response.status_code in (200, 400, 404), response.content[:300]
        if response.status_code != 200:
            assert isinstance(response.json()["detail"], str)

    get()
    record("hypothesis_api_alert_query", cases["n"])
    assert cases["n"] >= 100
