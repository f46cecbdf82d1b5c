"""Exports that leave the hospital: no spreadsheet formula survives, and a hematologist takes
away only their own center's rows."""

from __future__ import annotations

import csv
import io
from datetime import date

import pandas as pd
import pytest

from analytics.dataset_schema import read_analysis_csv
from analytics.models import DashboardSnapshot
from analytics.services import snapshot_compute
from carttrack.csv_safety import frame_table, neutralise_cell, read_csv, restore_cell, write_csv
from tests.analytics.test_dataset import infused_patient
from tests.factories import CenterFactory

EXPORT = "/dashboard/export.csv"

#: Formula payloads from the OWASP CSV-injection page and the probe of issue 11.
PAYLOADS = [
    "=1+2",
    "+SUM(1,2)",
    "@A1",
    "-cmd|' /C calc'!A0",
    '=HYPERLINK("http://evil.example","x")',
    "\t=1+2",
    "\r=1+2",
    "-1+2",
    "+",
    "'=1+2",
    "''@SUM(A1)",
]
HARMLESS = ["CT-001", "Kymriah", "", "12", "-3", "+1.5", "-2e3", "0.25", "a=b", "x@y", "'quoted"]


@pytest.mark.parametrize("value", PAYLOADS)
def test_a_formula_cell_is_written_as_text(value):
    written = neutralise_cell(value)
    assert written.startswith("'") and written[1:] == value
    assert restore_cell(written) == value


@pytest.mark.parametrize("value", HARMLESS)
def test_plain_values_and_numbers_are_written_as_they_are(value):
    assert neutralise_cell(value) == value
    assert restore_cell(value) == value


def test_no_cell_of_a_written_file_starts_a_formula():
    rows = [PAYLOADS[i : i + 2] for i in range(0, len(PAYLOADS) - 1, 2)]
    text = write_csv(["a", "=b"], rows)
    cells = [cell for row in csv.reader(io.StringIO(text)) for cell in row]
    assert cells and not [c for c in cells if c[:1] in ("=", "+", "-", "@", "\t", "\r")]
    # The one reader gives the values back once it removes the protecting quote.
    assert read_csv(text, restore=True) == [["a", "=b"], *rows]
    assert read_csv(text) == list(csv.reader(io.StringIO(text)))


@pytest.fixture
def formula_cohort(db):
    alpha = CenterFactory(code="alpha", name="Center Alpha")
    beta = CenterFactory(code="beta", name="Center Beta")
    # Study IDs are validated at entry; a product name is free text.
    return [
        infused_patient(center=alpha, study_id="CT-A1", relapse=150, product="=1+2"),
        infused_patient(center=alpha, study_id="CT-A2", followup=260, product="-cmd|' /C calc'!A0"),
        infused_patient(center=beta, study_id="CT-B1", death=90, product="@A1"),
    ]


def _cells(response) -> list[list[str]]:
    return list(csv.reader(io.StringIO(response.content.decode())))


@pytest.mark.django_db
def test_live_and_snapshot_exports_neutralise_formulas_and_read_back(
    client, registry, formula_cohort
):
    client.force_login(registry)
    snapshot = snapshot_compute(options={})
    for query in ({}, {"snapshot": snapshot.pk}):
        response = client.get(EXPORT, query)
        assert response.status_code == 200
        assert "no-store" in response["Cache-Control"]
        rows = _cells(response)
        assert not [c for row in rows for c in row if c[:1] in ("=", "+", "@", "\t", "\r")]
        products = sorted(row[2] for row in rows[1:])
        assert products == ["'-cmd|' /C calc'!A0", "'=1+2", "'@A1"]
        table = read_analysis_csv(io.StringIO(response.content.decode()))
        assert sorted(table["product"]) == ["-cmd|' /C calc'!A0", "=1+2", "@A1"]


@pytest.mark.django_db
def test_a_hematologist_never_exports_another_centers_rows(client, stranger, formula_cohort):
    client.force_login(stranger)  # Center Beta
    assert client.get(EXPORT, {"center": "alpha"}).status_code == 403
    for query in ({}, {"center": "beta"}):
        rows = _cells(client.get(EXPORT, query))
        assert [(r[0], r[1]) for r in rows[1:]] == [("CT-B1", "beta")]
    pooled = snapshot_compute(options={})
    rows = _cells(client.get(EXPORT, {"snapshot": pooled.pk}))
    assert [(r[0], r[1]) for r in rows[1:]] == [("CT-B1", "beta")]
    alpha_only = snapshot_compute(options={"center": "alpha"})
    rows = _cells(client.get(EXPORT, {"snapshot": alpha_only.pk}))
    assert rows[1:] == []
    assert DashboardSnapshot.objects.count() == 2


@pytest.mark.django_db
def test_an_account_without_a_center_exports_nothing(client, formula_cohort):
    from tests.factories import UserFactory

    nobody = UserFactory(username="nobody", center=None)
    client.force_login(nobody)
    assert client.get(EXPORT).status_code == 403


@pytest.mark.django_db
def test_registry_staff_export_every_centers_pseudonymous_rows(client, registry, formula_cohort):
    client.force_login(registry)
    rows = _cells(client.get(EXPORT, {"center": "alpha"}))
    assert [r[0] for r in rows[1:]] == ["CT-A1", "CT-A2"]
    rows = _cells(client.get(EXPORT))
    assert [r[0] for r in rows[1:]] == ["CT-A1", "CT-A2", "CT-B1"]


def _pandas_cells(frame, float_format=None) -> list[list[str]]:
    return list(csv.reader(io.StringIO(frame.to_csv(index=False, float_format=float_format))))


def test_a_frame_is_written_cell_for_cell_as_pandas_writes_it():
    frame = pd.DataFrame(
        {
            "text": ["=1+2", None, "CT-1"],
            "whole": pd.array([12, None, -3], dtype="Int64"),
            "real": [0.1, float("nan"), 1e-05],
            "big": [1e16, 123456789012345.0, 2.5],
            "flag": [True, False, True],
            "day": [date(2024, 1, 2), None, date(2025, 12, 31)],
        }
    )
    for float_format in (None, "%.10g"):
        written = read_csv(write_csv(*frame_table(frame, float_format=float_format)), restore=True)
        assert written == _pandas_cells(frame, float_format)


@pytest.mark.django_db
def test_the_exported_tables_are_the_cells_pandas_would_write(formula_cohort):
    from analytics.course_tables import alerts_frame, bcell_course_frame
    from analytics.dataset import CohortFilter, analysis_frame, analysis_table

    frame = analysis_frame(CohortFilter())
    exported = read_csv(write_csv(*analysis_table(frame)), restore=True)
    assert exported[1:] and exported == _pandas_cells(read_analysis_frame_as_written(frame))
    for course in (alerts_frame(CohortFilter()), bcell_course_frame(CohortFilter())):
        assert read_csv(write_csv(*frame_table(course, float_format="%.10g")), restore=True) == (
            _pandas_cells(course, "%.10g")
        )


def read_analysis_frame_as_written(frame):
    """The analysis table with whole-number float columns as Int64, as analysis_csv wrote it
    with pandas before it went through csv_safety."""
    out = frame.copy()
    for column in out.columns:
        values = out[column].dropna()
        if pd.api.types.is_float_dtype(out[column]) and (values == values.round()).all():
            out[column] = out[column].astype("Int64")
    return out
