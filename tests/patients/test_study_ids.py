"""Plain study IDs (CLINICAL.md section 2): no "/", spaces or line breaks, no leading formula
character, unique without regard to case, never a fixed path; and one patient's old, bad ID never
breaks a page or an e-mail for everyone else."""

import importlib
from datetime import date

import pytest
from django.apps import apps
from django.core import mail
from django.db import IntegrityError, transaction

from monitoring.models import Notification
from monitoring.notifications import notification_send
from patients.identifiers import study_id_problems
from patients.models import Patient
from tests.factories import InfusionFactory, PatientFactory
from tests.monitoring.test_notifications import raise_early_regeneration
from tests.patients.page_text import field_errors
from tests.patients.test_forms import _patient_post


@pytest.mark.parametrize(
    ("study_id", "says"),
    [
        ("A/1", "a slash “/”"),
        ("DEMO\n002", "a line break"),
        ("DEMO 002", "a space"),
        ("=1+2", "“+”, “=”"),
        ("-DEMO", "starts with “-”"),
        ("@DEMO", "“@”"),
        ("new", "a word the pages use as a path"),
        ("NEW", "a word the pages use as a path"),
    ],
)
def test_a_study_id_that_is_not_plain_is_refused_at_the_field(
    clinician_client, center, study_id, says
):
    response = clinician_client.post("/patients/new/", _patient_post(center, study_id=study_id))
    assert response.status_code == 200
    (message,) = field_errors(response.content.decode(), "study_id")
    assert says in message
    assert not Patient.objects.exists()


def test_plain_study_ids_pass():
    for study_id in ("DEMO-001", "ct_2025.07", "7A"):
        assert study_id_problems(study_id) == []


def test_study_ids_are_unique_without_regard_to_case(clinician_client, center):
    PatientFactory(center=center, study_id="demo-002")
    response = clinician_client.post("/patients/new/", _patient_post(center, study_id="DEMO-002"))
    assert (
        "without regard to upper and lower case"
        in field_errors(response.content.decode(), "study_id")[0]
    )
    assert Patient.objects.count() == 1
    # The database keeps the rule too, whatever door a row comes through.
    with pytest.raises(IntegrityError), transaction.atomic():
        Patient.objects.create(center=center, study_id="Demo-002")


@pytest.fixture
def legacy_patients(center):
    """Rows saved before the rule (bypassing validation), as the migration finds them."""
    slash = PatientFactory(center=center, study_id="A/1")
    newline = PatientFactory(center=center, study_id="B\n2")
    for patient in (slash, newline):
        InfusionFactory(patient=patient, infusion_date=date(2025, 3, 1))
    return slash, newline


def test_the_patient_list_and_pages_still_work_with_an_old_slash_or_line_break_id(
    clinician_client, legacy_patients
):
    listing = clinician_client.get("/patients/")
    assert listing.status_code == 200
    page = listing.content.decode()
    assert "/patients/A%252F1/" in page and "/patients/B%250A2/" in page
    detail = clinician_client.get("/patients/A%252F1/")
    assert detail.status_code == 200 and "A/1" in detail.content.decode()
    assert clinician_client.get("/patients/B%250A2/").status_code == 200


def test_an_email_about_a_patient_with_a_line_break_in_the_id_is_still_sent(
    legacy_patients, clinician, frozen_now
):
    _slash, newline = legacy_patients
    newline.hematologists.add(clinician)
    alert = raise_early_regeneration(newline)
    row = Notification.objects.get(alert=alert)
    assert notification_send(row.pk) == "sent"
    (message,) = mail.outbox
    assert "\n" not in message.subject and "B 2" in message.subject


def test_the_migration_reports_old_ids_without_changing_them(legacy_patients, capsys, caplog):
    migration = importlib.import_module(
        "patients.migrations.0002_i8_plausibility_limits_and_plain_study_ids"
    )
    migration.report_study_ids(apps, None)
    printed = capsys.readouterr().out
    assert "'A/1'" in printed and "'B\\n2'" in printed
    assert "a slash" in caplog.text
    assert set(Patient.objects.values_list("study_id", flat=True)) == {"A/1", "B\n2"}
