"""The spreadsheet preview runs in a background job (issue 21, item 2): the web request only
stores the file; the job refuses a file over the limits before reading its cells (an XLSX by
the sizes its zip declares and its sheets' dimensions, a CSV by its lines), with a message that
says the limits; the normal path through a real Celery worker."""

from __future__ import annotations

import io
import time
import zipfile
from datetime import UTC, date, datetime

import openpyxl
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from imports import jobs, spreadsheet, uploads
from imports.models import CHECKING, PREVIEWED, REFUSED, SpreadsheetUpload
from tests.factories import InfusionFactory, PatientFactory, UserFactory

CONTENT_TYPES = (
    '<?xml version="1.0" encoding="UTF-8"?>'
    '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
    '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.'
    'relationships+xml"/><Default Extension="xml" ContentType="application/xml"/>'
    '<Override PartName="/xl/workbook.xml" ContentType="application/vnd.openxmlformats-'
    'officedocument.spreadsheetml.sheet.main+xml"/><Override PartName="/xl/worksheets/'
    'sheet1.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.'
    'worksheet+xml"/></Types>'
)
RELS = (
    '<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="http://schemas.'
    'openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="http://'
    'schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" '
    'Target="xl/workbook.xml"/></Relationships>'
)
WORKBOOK = (
    '<?xml version="1.0" encoding="UTF-8"?><workbook xmlns="http://schemas.openxmlformats.org/'
    'spreadsheetml/2006/main" xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/'
    'relationships"><sheets><sheet name="labs" sheetId="1" r:id="rId1"/></sheets></workbook>'
)
WORKBOOK_RELS = (
    '<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="http://schemas.'
    'openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="http://'
    'schemas.openxmlformats.org/officeDocument/2006/relationships/worksheet" '
    'Target="worksheets/sheet1.xml"/></Relationships>'
)


def compact_xlsx(rows: int, *, dimension: bool = True) -> bytes:
    """An XLSX of `rows` one-cell rows, written as its XML parts (what a 175 KB attack file is),
    in well under a second."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("[Content_Types].xml", CONTENT_TYPES)
        archive.writestr("_rels/.rels", RELS)
        archive.writestr("xl/workbook.xml", WORKBOOK)
        archive.writestr("xl/_rels/workbook.xml.rels", WORKBOOK_RELS)
        with archive.open("xl/worksheets/sheet1.xml", "w") as sheet:
            sheet.write(
                b'<?xml version="1.0" encoding="UTF-8"?><worksheet xmlns="http://schemas.'
                b'openxmlformats.org/spreadsheetml/2006/main">'
            )
            if dimension:
                sheet.write(f'<dimension ref="A1:A{rows}"/>'.encode())
            sheet.write(b"<sheetData>")
            # Rows without their r attribute are numbered in order, so one row's XML repeated
            # compresses to almost nothing, as in the attack's file.
            chunk = b"<row><c><v>1</v></c></row>" * 1000
            for _ in range(rows // 1000):
                sheet.write(chunk)
            sheet.write(b"</sheetData></worksheet>")
    return out.getvalue()


def preview(user, name: str, data: bytes, csv_sheet: str = "") -> SpreadsheetUpload:
    """Receive as the web request does, then run the job as the worker does."""
    upload = uploads.upload_receive(user=user, file_name=name, data=data, csv_sheet=csv_sheet)
    jobs.job_run(job_id=str(upload.job_id))
    upload.refresh_from_db()
    return upload


def test_the_web_request_only_stores_the_file(
    clinician_client, clinician, monkeypatch, django_capture_on_commit_callbacks
):
    def never(*args, **kwargs):
        raise AssertionError("a web request parsed the file")

    monkeypatch.setattr(uploads, "read_rows", never)
    monkeypatch.setattr(spreadsheet.openpyxl, "load_workbook", never)
    data = compact_xlsx(10)
    with django_capture_on_commit_callbacks(execute=False) as queued:
        response = clinician_client.post(
            "/imports/", {"file": SimpleUploadedFile("labs.xlsx", data), "csv_sheet": ""}
        )
    assert response.status_code == 302 and len(queued) == 1
    upload = SpreadsheetUpload.objects.get()
    assert (upload.status, bytes(upload.content), upload.rows) == (CHECKING, data, {})
    page = clinician_client.get(response["Location"]).content.decode()
    assert "Reading and checking the file" in page and "imports/progress.js" in page
    status = clinician_client.get(f"/imports/{upload.pk}/status.json").json()
    assert status == {"status": "checking", "progress": {"phase": "queued", "done": 0, "total": 0}}


@pytest.mark.parametrize("dimension", [True, False], ids=["declared", "undeclared"])
def test_a_200000_row_xlsx_is_refused_fast_with_the_limits(clinician, dimension):
    data = compact_xlsx(200_000, dimension=dimension)
    assert len(data) < 1_000_000
    started = time.monotonic()
    upload = preview(clinician, "huge.xlsx", data)
    elapsed = time.monotonic() - started
    assert upload.status == REFUSED
    [problem] = upload.preview["problems"]
    assert "too large" in problem["message"] and "at most 50,000 rows" in problem["message"]
    assert "SPREADSHEET_MAX_ROWS" in problem["message"]
    assert upload.rows == {} and bytes(upload.content) == b""  # nothing of it is kept
    assert elapsed < (1.5 if dimension else 6), elapsed


def test_a_zip_bomb_is_refused_by_its_unzipped_size_before_openpyxl_opens_it(
    clinician, settings, monkeypatch
):
    settings.SPREADSHEET_MAX_UNZIPPED_BYTES = 5_000_000
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("[Content_Types].xml", CONTENT_TYPES)
        archive.writestr("xl/worksheets/sheet1.xml", b"<" + b" " * 6_000_000 + b">")
    assert len(out.getvalue()) < 20_000

    def never(*args, **kwargs):
        raise AssertionError("openpyxl opened a zip bomb")

    monkeypatch.setattr(spreadsheet.openpyxl, "load_workbook", never)
    upload = preview(clinician, "bomb.xlsx", out.getvalue())
    assert upload.status == REFUSED
    [problem] = upload.preview["problems"]
    assert "unzips to 6.0 MB" in problem["message"] and "5 MB unzipped" in problem["message"]


def test_a_300000_line_csv_is_refused_before_it_is_parsed(clinician):
    data = (
        b"study_id,collected_at,analyte,value,unit\n" + b"CT-1,2025-03-08,alc,1,10^9/L\n" * 300_000
    )
    started = time.monotonic()
    upload = preview(clinician, "huge.csv", data, csv_sheet="labs")
    assert time.monotonic() - started < 2
    assert upload.status == REFUSED
    assert "300,001 lines" in upload.preview["problems"][0]["message"]


@pytest.mark.celery_worker
def test_the_preview_runs_on_a_real_worker(celery_worker_factory, center, roles, client, wait_for):
    user = UserFactory(username="preview-worker-user", center=center)
    user.groups.add(roles["clinician"])
    client.force_login(user)
    patient = PatientFactory(center=center, study_id="CT-W1")
    InfusionFactory(patient=patient, infusion_date=date(2025, 3, 1))
    book = openpyxl.Workbook()
    book.active.title = "labs"
    book.active.append(["study_id", "collected_at", "analyte", "value", "unit"])
    book.active.append(["CT-W1", datetime(2025, 3, 8, 8, 30), "alc", 0.9, "10^9/L"])
    data = io.BytesIO()
    book.save(data)
    celery_worker_factory()
    response = client.post(
        "/imports/", {"file": SimpleUploadedFile("w.xlsx", data.getvalue()), "csv_sheet": ""}
    )
    upload = SpreadsheetUpload.objects.get()
    status_url = f"/imports/{upload.pk}/status.json"
    wait_for(
        lambda: client.get(status_url).json()["status"] != CHECKING,
        timeout=60,
        what="the preview job",
    )
    upload.refresh_from_db()
    assert upload.status == PREVIEWED, upload.preview
    assert upload.preview["counts"]["lab_results"] == 1
    page = client.get(response["Location"]).content.decode()
    assert "Confirm and import" in page
    assert upload.job.status == "done" and upload.job.finished_at > datetime(2025, 1, 1, tzinfo=UTC)
