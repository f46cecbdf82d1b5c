"""Spreadsheets as Excel writes them (issue 17, item 4): a German Excel CSV (semicolons, dates
as 02.11.2026, decimal commas, Windows-1252), title rows above the header, extra and empty
columns, Excel serial numbers in date cells, each problem once in plain words, and a repeated
response or event recognised as a duplicate. Files are written by openpyxl and by csv as
German Excel writes them."""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime

import openpyxl
import pytest
import time_machine

from imports.models import PREVIEWED, REFUSED, SpreadsheetUpload
from patients.models import ClinicalEvent, LabResult, ResponseAssessment
from tests.factories import EventFactory, InfusionFactory, PatientFactory, ResponseFactory
from tests.imports.test_spreadsheet_upload import post_file

NOW = datetime(2027, 6, 1, 10, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _now():
    with time_machine.travel(NOW, tick=False):
        yield


@pytest.fixture
def patient(center):
    stored = PatientFactory(center=center, study_id="CT-DE1")
    InfusionFactory(patient=stored, infusion_date=date(2026, 10, 20))
    return stored


def german_csv(rows: list[list[str]]) -> bytes:
    """As German Excel saves "CSV (Trennzeichen-getrennt)": semicolons, Windows-1252, CRLF."""
    out = io.StringIO()
    csv.writer(out, delimiter=";", lineterminator="\r\n").writerows(rows)
    return out.getvalue().encode("cp1252")


def xlsx(sheets: dict[str, list[list]]) -> bytes:
    book = openpyxl.Workbook()
    book.remove(book.active)
    for name, rows in sheets.items():
        sheet = book.create_sheet(name)
        for row in rows:
            sheet.append(row)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def test_a_german_excel_csv_with_a_title_row_and_an_extra_column_previews_and_imports(
    clinician_client, patient
):
    data = german_csv(
        [
            ["Laborwerte Zentrum Alpha – Übersicht", "", "", "", "", ""],
            ["study_id", "collected_at", "analyte", "value", "unit", "Bemerkung"],
            ["CT-DE1", "02.11.2026 08:30", "alc", "0,9", "10^9/L", "nüchtern"],
            ["CT-DE1", "09.11.2026 08:30", "alc", "1,2", "10^9/L", ""],
            ["", "", "", "", "", ""],
        ]
    )
    page = post_file(clinician_client, "labor.csv", data, csv_sheet="labs")
    upload = SpreadsheetUpload.objects.get()
    assert upload.status == PREVIEWED, upload.preview["problems"]
    assert upload.preview["counts"]["lab_results"] == 2
    # stored with their codes (issue 23), shown in the reader's language: here the default
    assert [n["code"] for n in upload.preview["notices"]] == ["title_rows", "ignored_columns"]
    assert page.context["preview"]["notices"] == [
        "labs: row 1 above the header (row 2) was read as a title and skipped.",
        "labs: ignored 1 column that is not in the template: F (bemerkung).",
    ]
    assert "read as a title" in page.content.decode()
    clinician_client.post(f"/imports/{upload.pk}/confirm/")
    first = LabResult.objects.order_by("collected_at").first()
    assert first.collected_at == datetime(2026, 11, 2, 7, 30, tzinfo=UTC)  # Berlin, CET
    assert str(first.value) == "0.900000"


def test_problems_keep_the_spreadsheets_own_row_numbers_and_are_said_once(
    clinician_client, patient
):
    data = xlsx(
        {
            "labs": [
                ["Export 2026-11-30"],
                [],
                ["study_id", "collected_at", "analyte", "value", "unit"],
                ["CT-DE1", "2026-11-02 08:30", "pb_bcell_abs", 3, "mg/dL"],
                ["CT-DE1", "31.02.2026 08:30", "alc", 1, "10^9/L"],
            ]
        }
    )
    post_file(clinician_client, "labs.xlsx", data)
    upload = SpreadsheetUpload.objects.get()
    assert upload.status == REFUSED
    problems = [(p["row"], p["column"], p["message"]) for p in upload.preview["problems"]]
    assert [(row, column) for row, column, _m in problems] == [(4, "unit"), (5, "collected_at")]
    assert "is not a valid choice" not in str(problems)  # Django's raw wording is not shown
    assert "mg/dL is not a unit of PB B cells" in problems[0][2]
    assert "31.02.2026 08:30 is not a date" in problems[1][2]


def test_excel_serial_numbers_in_date_cells_and_dates_by_the_centers_order(
    clinician_client, patient, center
):
    serial_2026_11_02 = (date(2026, 11, 2) - date(1899, 12, 30)).days
    data = xlsx(
        {
            "responses": [
                ["study_id", "assessed_on", "response"],
                ["CT-DE1", serial_2026_11_02, "CR"],
            ],
            "events": [
                ["study_id", "kind", "event_date"],
                ["CT-DE1", "last_followup", "03/12/2026"],
            ],
        }
    )
    post_file(clinician_client, "course.xlsx", data)
    refused = SpreadsheetUpload.objects.get()
    [problem] = refused.preview["problems"]
    assert "could be 3 December or 12 March" in problem["message"]
    assert "date order" in problem["message"]

    center.date_order = "dmy"
    center.save()
    SpreadsheetUpload.objects.all().delete()
    post_file(clinician_client, "course.xlsx", data)
    upload = SpreadsheetUpload.objects.get()
    assert upload.status == PREVIEWED, upload.preview["problems"]
    clinician_client.post(f"/imports/{upload.pk}/confirm/")
    assert ResponseAssessment.objects.get().assessed_on == date(2026, 11, 2)
    assert ClinicalEvent.objects.get().event_date == date(2026, 12, 3)


def test_a_repeated_response_or_event_is_a_duplicate_in_preview_and_on_confirm(
    clinician_client, patient
):
    ResponseFactory(patient=patient, assessed_on=date(2026, 11, 20), response="CR")
    EventFactory(patient=patient, kind="last_followup", event_date=date(2026, 12, 1))
    data = xlsx(
        {
            "responses": [
                ["study_id", "assessed_on", "response"],
                ["CT-DE1", "2026-11-20", "CR"],  # stored
                ["CT-DE1", "2026-11-27", "CR"],
                ["CT-DE1", "2026-11-27", "CR"],  # twice in the file
            ],
            "events": [
                ["study_id", "kind", "event_date"],
                ["CT-DE1", "last_followup", "2026-12-01"],  # stored
            ],
        }
    )
    post_file(clinician_client, "again.xlsx", data)
    upload = SpreadsheetUpload.objects.get()
    assert upload.status == REFUSED
    problems = {(p["sheet"], p["row"]): p["message"] for p in upload.preview["problems"]}
    assert set(problems) == {("responses", 2), ("responses", 4), ("events", 2)}
    assert "already recorded for this patient (stored)" in problems[("responses", 2)]
    assert "(responses row 3)" in problems[("responses", 4)]
    assert "last followup on this date is already recorded" in problems[("events", 2)]
    assert ResponseAssessment.objects.count() == 1 and ClinicalEvent.objects.count() == 1


def test_a_nul_character_in_a_csv_cell_is_refused_with_a_message_not_a_500(
    clinician_client, patient
):
    """Issue 21: NUL bytes refused with a message everywhere, files too (a CSV cell with \x00
    gave a 500). (openpyxl cannot write a NUL into an .xlsx at all.)"""
    rows = [
        ["study_id", "collected_at", "analyte", "value", "unit"],
        ["CT-DE1", "02.11.2026 08:30", "alc", "0,9\x00", "10^9/L"],
    ]
    out = io.StringIO()
    csv.writer(out, delimiter=";", lineterminator="\r\n").writerows(rows)
    response = post_file(clinician_client, "labor.csv", out.getvalue().encode(), "labs")
    assert response.status_code == 200
    upload = SpreadsheetUpload.objects.get()
    assert upload.status == REFUSED
    messages = [p["message"] for p in upload.preview["problems"]]
    assert messages[0].startswith("Line 2 holds a NUL character"), messages
    assert "Line 2 holds a NUL character" in response.content.decode()
    assert not LabResult.objects.exists()
