"""Spreadsheet upload for data managers: template, preview with every problem by row, column and
value before anything is saved, confirm to commit, the same file again creates nothing."""

from __future__ import annotations

import io
import threading
import time
from datetime import UTC, datetime
from decimal import Decimal

import openpyxl
import pytest
import time_machine
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection

from imports import jobs, uploads
from imports.models import (
    IMPORTED,
    IMPORTING,
    PREVIEWED,
    QUEUED,
    REFUSED,
    ImportJob,
    SpreadsheetUpload,
)
from monitoring.models import Alert, Notification
from patients.models import Infusion, LabResult, Patient, ResponseAssessment
from tests.factories import InfusionFactory, PatientFactory, UserFactory

NOW = datetime(2027, 6, 1, 10, tzinfo=UTC)
URL = "/imports/"


def workbook(labs_rows, *, extra_sheet=None) -> bytes:
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.title = "patients"
    sheet.append(["study_id", "sex", "date_of_birth", "mrn"])
    sheet.append(["CT-XL1", "F", datetime(1988, 4, 2), "MRN-77"])
    infusions = book.create_sheet("infusions")
    infusions.append(["study_id", "infusion_date", "product"])
    infusions.append(["CT-XL1", datetime(2025, 3, 3), "tisa-cel"])
    labs = book.create_sheet("labs")
    labs.append(["study_id", "collected_at", "analyte", "value", "unit", "qualifier"])
    for row in labs_rows:
        labs.append(row)
    responses = book.create_sheet("responses")
    responses.append(["study_id", "assessed_on", "response", "mrd_status"])
    responses.append(["CT-XL1", "2025-03-31", "CR", "negative"])
    if extra_sheet:
        extra = book.create_sheet(extra_sheet[0])
        for row in extra_sheet[1]:
            extra.append(row)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


GOOD_LABS = [
    ["CT-XL1", "2025-03-10 08:30", "pb_bcell_abs", None, "cells/uL", "undetectable"],
    ["CT-XL1", "2025-03-17 08:30", "pb_bcell_abs", 0, "cells/uL", None],
    ["CT-XL1", "2025-04-02 08:30", "pb_bcell_abs", 0.015, "10^9/L", None],  # day 30: 15 cells/µL
]


def run_preview_jobs() -> None:
    """What the worker does with the queued preview jobs (the web request only stores the
    file); tests with a real worker are in test_spreadsheet_preview_job.py."""
    for job_id in ImportJob.objects.filter(kind="spreadsheet_preview", status=QUEUED).values_list(
        "pk", flat=True
    ):
        jobs.job_run(job_id=str(job_id))


def post_file(client, name: str, data: bytes, csv_sheet: str = ""):
    response = client.post(URL, {"file": SimpleUploadedFile(name, data), "csv_sheet": csv_sheet})
    if response.status_code != 302:
        return response
    run_preview_jobs()
    return client.get(response["Location"], follow=True)


@pytest.fixture(autouse=True)
def _now():
    """Signed in and working on NOW (a session started before a time jump would expire)."""
    with time_machine.travel(NOW, tick=False):
        yield


@pytest.fixture
def manager(clinician_client):
    return clinician_client


def test_the_templates_name_every_column(manager):
    xlsx = manager.get("/imports/template.xlsx")
    assert xlsx.status_code == 200
    book = openpyxl.load_workbook(io.BytesIO(xlsx.content))
    assert book.sheetnames == [
        "patients",
        "infusions",
        "labs",
        "responses",
        "events",
        "therapies",
        "guide",
    ]
    assert [c.value for c in book["labs"][1]][:3] == ["study_id", "collected_at", "analyte"]
    csv = manager.get("/imports/template.csv?sheet=events")
    assert csv.content.decode().splitlines()[0].startswith("study_id,kind,event_date")


def test_a_file_with_problems_shows_each_by_row_column_and_value_and_saves_nothing(manager):
    bad = GOOD_LABS + [
        ["CT-XL1", "2025-04-09 08:30", "pb_bcell_abs", 3, "% cells", None],
        ["CT-XL1", "yesterday", "alc", 1, "10^9/L", None],
        ["CT-XL9", "2025-04-09 08:30", "alc", 1, "10^9/L", None],
    ]
    with time_machine.travel(NOW, tick=False):
        page = post_file(manager, "history.xlsx", workbook(bad))
    upload = SpreadsheetUpload.objects.get()
    assert upload.status == REFUSED
    problems = {
        (p["sheet"], p["row"], p["column"], p["value"]): p["message"]
        for p in upload.preview["problems"]
    }
    assert "is not a unit of PB B cells" in problems[("labs", 5, "unit", "% cells")]
    assert "YYYY-MM-DD HH:MM" in problems[("labs", 6, "collected_at", "yesterday")]
    assert "No patient CT-XL9" in problems[("labs", 7, "study_id", "CT-XL9")]
    text = page.content.decode()
    assert "nothing will be saved" in text and "% cells" in text
    assert "Confirm and import" not in text
    assert not Patient.objects.exists() and not LabResult.objects.exists()


def test_preview_then_confirm_imports_history_without_e_mail_and_the_same_file_creates_nothing(
    manager, clinician, settings
):
    settings.ALERT_STALE_AFTER_DAYS = 60  # the default: older than this before arrival is history
    data = workbook(GOOD_LABS)
    with time_machine.travel(NOW, tick=False):
        page = post_file(manager, "history.xlsx", data)
        upload = SpreadsheetUpload.objects.get()
        assert upload.status == PREVIEWED
        assert upload.preview["counts"] == {
            "patients": 1,
            "infusions": 1,
            "lab_results": 3,
            "samples": 3,
            "responses": 1,
            "events": 0,
            "therapies": 0,
        }
        assert "Confirm and import" in page.content.decode()
        assert not Patient.objects.exists()  # nothing before the confirmation

        done = manager.post(f"/imports/{upload.pk}/confirm/", follow=True)
        assert done.status_code == 200
        upload.refresh_from_db()
        assert upload.status == IMPORTED
        assert upload.rows == {}  # identifiers are not kept in the upload once imported
        patient = Patient.objects.get(study_id="CT-XL1")
        assert (patient.mrn, patient.center, patient.date_of_birth.isoformat()) == (
            "MRN-77",
            clinician.profile.center,
            "1988-04-02",
        )
        count = LabResult.objects.get(patient=patient, canonical_value__gt=0)
        assert count.canonical_value == 15
        assert count.collected_at == datetime(2025, 4, 2, 6, 30, tzinfo=UTC)  # Berlin summer time
        alert = Alert.objects.get(patient=patient)
        assert (alert.rule, alert.historical) == ("early_regeneration", True)
        assert not Notification.objects.exists()
        assert "recorded as history" in done.content.decode()

        again = post_file(manager, "history-copy.xlsx", data)
    assert "Uploading the same file again creates nothing" in again.content.decode()
    assert SpreadsheetUpload.objects.count() == 1
    assert (Patient.objects.count(), LabResult.objects.count(), Infusion.objects.count()) == (
        1,
        3,
        1,
    )
    assert ResponseAssessment.objects.count() == 1


def test_a_csv_of_labs_adds_to_a_stored_patient_in_its_centers_time(manager, center):
    patient = PatientFactory(center=center, study_id="CT-CSV")
    InfusionFactory(patient=patient)
    csv = (
        b"study_id,collected_at,analyte,value,unit,qualifier\n"
        b"CT-CSV,2025-03-08 08:00,pb_bcell_abs,,cells/uL,undetectable\n"
        b"CT-CSV,2025-03-08 08:00,alc,0.7,10^9/L,\n"
    )
    with time_machine.travel(NOW, tick=False):
        post_file(manager, "labs.csv", csv, csv_sheet="labs")
        upload = SpreadsheetUpload.objects.get()
        assert upload.preview["problems"] == []
        manager.post(f"/imports/{upload.pk}/confirm/")
    assert sorted(LabResult.objects.values_list("analyte", flat=True)) == ["alc", "pb_bcell_abs"]
    assert LabResult.objects.first().collected_at == datetime(2025, 3, 8, 7, tzinfo=UTC)


def test_a_large_file_is_imported_by_a_job_with_progress(
    manager, settings, django_capture_on_commit_callbacks
):
    settings.IMPORT_INLINE_MAX_ROWS = 2
    with time_machine.travel(NOW, tick=False):
        post_file(manager, "big.xlsx", workbook(GOOD_LABS))
        upload = SpreadsheetUpload.objects.get()
        with django_capture_on_commit_callbacks(execute=False) as enqueued:
            page = manager.post(f"/imports/{upload.pk}/confirm/", follow=True)
        upload.refresh_from_db()
        assert upload.status == IMPORTING and len(enqueued) == 1
        text = page.content.decode()
        assert "<progress" in text and "imports/progress.js" in text and "<script>" not in text
        assert manager.get(f"/imports/{upload.pk}/status.json").json() == {
            "status": "importing",
            "progress": {"phase": "queued", "done": 0, "total": 6},
        }
        jobs.job_run(job_id=str(upload.job_id))  # what the worker does
    upload.refresh_from_db()
    assert upload.status == IMPORTED
    assert LabResult.objects.count() == 3
    assert manager.get(f"/imports/{upload.pk}/status.json").json()["status"] == IMPORTED


def test_only_users_who_enter_data_may_upload(client, registry, clinician):
    assert client.get(URL).status_code == 302  # to the login page
    client.force_login(registry)
    assert client.get(URL).status_code == 403
    assert client.get("/imports/template.xlsx").status_code == 403
    assert client.put(URL).status_code in (403, 405)


def test_someone_elses_upload_is_not_found(manager, stranger, client):
    with time_machine.travel(NOW, tick=False):
        post_file(manager, "history.xlsx", workbook(GOOD_LABS))
    upload = SpreadsheetUpload.objects.get()
    client.force_login(stranger)
    assert client.get(f"/imports/{upload.pk}/").status_code == 404
    assert client.post(f"/imports/{upload.pk}/confirm/").status_code == 404


@pytest.mark.parametrize(
    ("name", "data", "message"),
    [
        # Changed (issue 17): a row longer than the header was a refusal of its own; the cell is
        # now an ignored column (a notice) and the file is refused for what it lacks.
        ("labs.csv", b"study_id,analyte\nA,b,c\n", "Missing column"),
        ("labs.csv", b"\xff\xfe\x00bad", "UTF-8"),
        ("book.xlsx", b"not a workbook", "not a readable XLSX"),
        ("labs.csv", b"study_id,colour\nCT-1,red\n", "not in the template: B (colour)"),
    ],
)
def test_a_malformed_file_is_a_clear_problem_not_a_500(manager, name, data, message):
    page = post_file(manager, name, data, csv_sheet="labs")
    assert page.status_code == 200
    assert message in page.content.decode()
    assert SpreadsheetUpload.objects.get().status == REFUSED


RESPONSES_CSV = b"study_id,assessed_on,response,mrd_status\nCT-TWO,2025-03-31,CR,negative\n"


def _someone_waits_for_a_lock() -> bool:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity"
            " WHERE datname = current_database() AND wait_event_type = 'Lock'"
        )
        return cursor.fetchone()[0] > 0


def test_two_confirms_at_once_import_the_upload_once(
    transactional_db, clinician, center, monkeypatch
):
    """A double click or a second tab: the second confirm, holding the upload as it was read
    before the first one finished, waits for the first and then imports nothing (responses have
    no unique constraint: a second import would store them twice)."""
    InfusionFactory(patient=PatientFactory(center=center, study_id="CT-TWO"))
    upload = uploads.upload_receive(
        user=clinician, file_name="responses.csv", data=RESPONSES_CSV, csv_sheet="responses"
    )
    run_preview_jobs()
    upload.refresh_from_db()
    assert upload.status == PREVIEWED
    stale = SpreadsheetUpload.objects.get(pk=upload.pk)  # what the second request read

    # The first confirm stops where it records the outcome, until the second one has either
    # finished (it did not wait for the first) or waits for the first's lock.
    reached, go_on = threading.Event(), threading.Event()
    record_outcome = uploads._imported

    def first_one_slow(*args, **kwargs):
        if not reached.is_set():
            reached.set()
            go_on.wait(10)
        return record_outcome(*args, **kwargs)

    monkeypatch.setattr(uploads, "_imported", first_one_slow)
    failures = []

    def confirm(row):
        try:
            uploads.upload_confirm(upload=row, user=clinician)
        except Exception as error:  # reported by the main thread
            failures.append(error)
        finally:
            connection.close()

    first = threading.Thread(target=confirm, args=(upload,))
    first.start()
    assert reached.wait(10), "the first confirm never reached its outcome"
    second = threading.Thread(target=confirm, args=(stale,))
    second.start()
    deadline = time.monotonic() + 10
    while second.is_alive() and not _someone_waits_for_a_lock():
        assert time.monotonic() < deadline, "the second confirm neither finished nor waited"
        time.sleep(0.02)
    go_on.set()
    first.join(10)
    second.join(10)
    assert not first.is_alive() and not second.is_alive()
    assert failures == []
    assert ResponseAssessment.objects.filter(patient__study_id="CT-TWO").count() == 1
    upload.refresh_from_db()
    assert upload.status == IMPORTED


def test_confirming_an_imported_upload_again_says_so_and_creates_nothing(manager, center):
    InfusionFactory(patient=PatientFactory(center=center, study_id="CT-TWO"))
    post_file(manager, "responses.csv", RESPONSES_CSV, csv_sheet="responses")
    upload = SpreadsheetUpload.objects.get()
    manager.post(f"/imports/{upload.pk}/confirm/")
    again = manager.post(f"/imports/{upload.pk}/confirm/", follow=True)
    assert again.status_code == 200
    assert "This upload was already imported: nothing more was created." in again.content.decode()
    assert ResponseAssessment.objects.count() == 1
    upload.refresh_from_db()
    assert upload.status == IMPORTED


def labs_workbook(values) -> bytes:
    """A workbook of labs for the stored patient CT-NUM, its values as the cells hold them."""
    book = openpyxl.Workbook()
    labs = book.active
    labs.title = "labs"
    labs.append(["study_id", "collected_at", "analyte", "value", "unit"])
    for day, (analyte, value, unit) in enumerate(values, start=10):
        labs.append(["CT-NUM", f"2025-03-{day} 08:30", analyte, value, unit])
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def test_number_cells_of_an_xlsx_import_with_their_exact_values(manager, center):
    """A number cell holds one number: 1.234 is not a thousands grouping, 0.00005 (which the
    cell gives as 5e-05) not an exponent typed by someone."""
    InfusionFactory(patient=PatientFactory(center=center, study_id="CT-NUM"))
    data = labs_workbook([("alc", 1.234, "10^9/L"), ("bm_mrd_ngs", 0.00005, "fraction")])
    post_file(manager, "numbers.xlsx", data)
    upload = SpreadsheetUpload.objects.get()
    assert upload.preview["problems"] == []
    assert upload.status == PREVIEWED
    manager.post(f"/imports/{upload.pk}/confirm/")
    upload.refresh_from_db()
    assert upload.status == IMPORTED
    values = dict(LabResult.objects.values_list("analyte", "value"))
    assert values == {"alc": Decimal("1.234"), "bm_mrd_ngs": Decimal("0.00005")}


def test_a_text_cell_of_an_xlsx_keeps_the_rules_of_typed_numbers(manager, center):
    InfusionFactory(patient=PatientFactory(center=center, study_id="CT-NUM"))
    post_file(manager, "text.xlsx", labs_workbook([("alc", "1.234", "10^9/L")]))
    upload = SpreadsheetUpload.objects.get()
    assert upload.status == REFUSED
    problems = {
        (p["sheet"], p["row"], p["column"], p["value"]): p["message"]
        for p in upload.preview["problems"]
    }
    assert "“1.234” is ambiguous" in problems[("labs", 2, "value", "1.234")]
    assert not LabResult.objects.exists()


def _data_manager(username: str, center, roles, **names):
    user = UserFactory(username=username, center=center, **names)
    user.groups.add(roles["clinician"])
    return user


def test_a_colleague_uploading_a_file_already_imported_at_the_center_is_told_who_did(
    manager, client, center, roles
):
    data = workbook(GOOD_LABS)
    post_file(manager, "history.xlsx", data)
    upload = SpreadsheetUpload.objects.get()
    manager.post(f"/imports/{upload.pk}/confirm/")
    colleague = _data_manager("colleague", center, roles)
    client.force_login(colleague)
    page = post_file(client, "history-copy.xlsx", data)
    assert page.status_code == 200  # not the 404 of a colleague's upload page
    text = page.content.decode()
    assert "This file was already imported at your center by Clara Clinician" in text
    assert "2027-06-01" in text and "nothing was created" in text
    assert f"/imports/{upload.pk}/" not in text  # no link to a page the colleague cannot open
    assert SpreadsheetUpload.objects.count() == 1
    assert (Patient.objects.count(), LabResult.objects.count()) == (1, 3)


@pytest.mark.parametrize("elsewhere", ["other center", "no center"])
def test_a_file_imported_at_one_center_is_not_matched_for_another(
    manager, client, center, other_center, roles, elsewhere
):
    data = workbook(GOOD_LABS)
    post_file(manager, "history.xlsx", data)
    imported = SpreadsheetUpload.objects.get()
    manager.post(f"/imports/{imported.pk}/confirm/")
    user = _data_manager("elsewhere", other_center if elsewhere == "other center" else None, roles)
    client.force_login(user)
    page = post_file(client, "history.xlsx", data)
    assert page.status_code == 200
    assert "already imported" not in page.content.decode()
    own = SpreadsheetUpload.objects.get(user=user)  # checked as a file of their own
    assert own.pk != imported.pk and own.status != IMPORTED
    assert page.request["PATH_INFO"] == f"/imports/{own.pk}/"
