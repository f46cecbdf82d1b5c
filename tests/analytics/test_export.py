"""The analysis CSV export and the data dictionary pages."""

from __future__ import annotations

import csv
import io
import re
from datetime import date

import pytest

from analytics.dataset_schema import COLUMN_NAMES, DATA_DICTIONARY, read_analysis_csv
from patients.models import Patient
from tests.analytics.test_dataset import infused_patient
from tests.factories import CenterFactory

pytestmark = pytest.mark.django_db

EXPORT = "/dashboard/export.csv"
DICTIONARY = "/dashboard/data-dictionary/"


@pytest.fixture
def identified_cohort():
    """Three patients whose restricted identifiers are known, so the export can be searched."""
    alpha = CenterFactory(code="alpha", name="Center Alpha")
    beta = CenterFactory(code="beta", name="Center Beta", time_zone="Asia/Shanghai")
    patients = [
        infused_patient(center=alpha, study_id="CT-A1", relapse=150, death=220),
        infused_patient(center=alpha, study_id="CT-A2", followup=260, bcells={7: None, 30: 8}),
        infused_patient(center=beta, study_id="CT-B1", responses=((28, "NR"),), death=90),
    ]
    for n, patient in enumerate(patients):
        Patient.objects.filter(pk=patient.pk).update(
            mrn=f"MRN-5550{n}",
            full_name=f"Maximilian Identifiable{n}",
            date_of_birth=date(1979, 11, 2 + n),
        )
    return patients


def _rows(response) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(response.content.decode())))


@pytest.fixture
def registry_client(client, registry):
    client.force_login(registry)
    return client


def test_export_is_the_data_dictionary_columns_in_order(registry_client, identified_cohort):
    response = registry_client.get(EXPORT)
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    assert response["Content-Disposition"].startswith('attachment; filename="carttrack-analysis-')
    header = response.content.decode().splitlines()[0]
    assert header.split(",") == list(COLUMN_NAMES)
    assert [r["study_id"] for r in _rows(response)] == ["CT-A1", "CT-A2", "CT-B1"]
    assert len(read_analysis_csv(io.StringIO(response.content.decode()))) == 3


def test_export_holds_pseudonymous_ids_only(registry_client, identified_cohort):
    text = registry_client.get(EXPORT).content.decode()
    for secret in ("MRN-555", "Maximilian", "Identifiable", "1979-11-0", "1979"):
        assert secret not in text
    assert {r["study_id"] for r in csv.DictReader(io.StringIO(text))} == {
        p.study_id for p in identified_cohort
    }


def test_export_follows_the_cohort_filter(registry_client, identified_cohort):
    rows = _rows(registry_client.get(EXPORT, {"center": "beta"}))
    assert [(r["study_id"], r["center"], r["cr"]) for r in rows] == [("CT-B1", "beta", "0")]


@pytest.mark.parametrize(
    "query",
    [
        {"center": "gamma"},  # no such center (a typo, or a center not yet set up)
        {"center": "beta", "infused_from": "2025-06-01", "infused_to": "2024-01-01"},
    ],
    ids=["unknown-center", "reversed-dates"],
)
def test_export_with_an_invalid_filter_does_not_export_every_patient(
    registry_client, identified_cohort, query
):
    """A filter the form rejects must not silently become "all patients" in a file that a
    statistician then analyses as the cohort asked for."""
    response = registry_client.get(EXPORT, query)
    assert response.status_code == 400 or _rows(response) == []


def test_data_dictionary_page_lists_every_column(clinician_client):
    response = clinician_client.get(DICTIONARY)
    assert response["Content-Type"].startswith("text/html")
    html = response.content.decode()
    names = re.findall(r'<th scope="row"><code>([a-z0-9_]+)</code></th>', html)
    assert names == list(COLUMN_NAMES)


def test_data_dictionary_markdown_lists_every_column(clinician_client):
    response = clinician_client.get(DICTIONARY, {"format": "md"})
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/markdown")
    lines = response.content.decode().splitlines()
    assert lines[0] == "| column | type | meaning | allowed values |"
    table = lines[2 : lines.index("")]
    names = [line.split("|")[1].strip() for line in table]
    assert names == list(COLUMN_NAMES)


def test_data_dictionary_as_csv(clinician_client):
    response = clinician_client.get(DICTIONARY, {"format": "csv"})
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    assert "carttrack-data-dictionary.csv" in response["Content-Disposition"]
    rows = _rows(response)
    assert rows == DATA_DICTIONARY
    by_name = {r["name"]: r for r in rows}
    assert by_name["early_regen"]["allowed_values"] == "0, 1; blank allowed"
    assert by_name["cir_event"]["allowed_values"] == "0, 1, 2; blank allowed"


@pytest.mark.parametrize(
    "url", [EXPORT, f"{EXPORT}?center=alpha", DICTIONARY, f"{DICTIONARY}?format=csv"]
)
def test_anonymous_is_sent_to_the_login_page(client, identified_cohort, url):
    response = client.get(url)
    assert response.status_code == 302
    assert response["Location"].startswith("/login/?next=/dashboard/")
    assert b"CT-A1" not in response.content


@pytest.mark.parametrize("url", [EXPORT, DICTIONARY])
def test_export_pages_refuse_post(clinician_client, url):
    assert clinician_client.post(url).status_code == 405
