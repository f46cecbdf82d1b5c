"""The rule-performance exports (alerts, B-cell course) go through carttrack.csv_safety like
every CSV: a study ID that would start a spreadsheet formula (one that bypassed the study-ID
validation, as a raw database write or legacy data could) is written as text, the response is
never cached, and CARTtrack's readers give the stored value back."""

from __future__ import annotations

import csv
import io

import pytest

from analytics.course_tables import read_alerts_csv, read_bcell_csv
from monitoring.services import alerts_sync
from patients.models import Patient
from tests.analytics.test_dataset import infused_patient

PAYLOADS = ["=1+2", "-cmd|' /C calc'!A0", "@SUM(1,2)"]


@pytest.fixture
def formula_study(db, center, frozen_now):
    patients = [
        infused_patient(center=center, bcells={7: None, 30: 12}, relapse=120, followup=400),
        infused_patient(center=center, bcells={7: None, 60: 5}, followup=500),
        infused_patient(center=center, bcells={7: None, 21: 3}, death=300),
    ]
    for patient, payload in zip(patients, PAYLOADS, strict=True):
        alerts_sync(patient=patient)
        Patient.objects.filter(pk=patient.pk).update(study_id=payload)  # bypasses validation
    return patients


@pytest.mark.parametrize(
    ("url", "reader"),
    [
        ("/dashboard/rules/alerts.csv", read_alerts_csv),
        ("/dashboard/rules/bcells.csv", read_bcell_csv),
    ],
)
@pytest.mark.django_db
def test_rule_exports_neutralise_formula_study_ids(client, registry, formula_study, url, reader):
    client.force_login(registry)
    response = client.get(url)
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    assert "no-store" in response["Cache-Control"]
    body = response.content.decode()
    rows = list(csv.reader(io.StringIO(body)))
    study_ids = {row[0] for row in rows[1:]}
    assert study_ids and study_ids <= {"'" + p for p in PAYLOADS}
    for row in rows:
        for cell in row:
            assert not cell.startswith(("=", "+", "@", "\t", "\r")), cell
            assert not cell.startswith("-") or cell.lstrip("-").replace(".", "").isdigit(), cell
    assert set(reader(io.StringIO(body))["study_id"]) <= set(PAYLOADS)
