"""The change history of the clinical records is append-only in PostgreSQL, as the access log
is: saves, corrections and deletes still add history rows, but no UPDATE or DELETE of a history
row gets through, whatever code or admin asks; and the admin deletes no user (their name is on
the history)."""

from __future__ import annotations

from datetime import date

import pytest
from django.contrib.auth import get_user_model
from django.db import DatabaseError, connection, transaction

from patients.models import LabResult, Patient
from tests.factories import InfusionFactory, LabResultFactory, PatientFactory

pytestmark = pytest.mark.django_db


def history_tables() -> list[str]:
    with connection.cursor() as cursor:
        return [
            name
            for name in connection.introspection.table_names(cursor)
            if name.startswith("patients_historical")
        ]


def protected_tables() -> set[str]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT event_object_table FROM information_schema.triggers "
            "WHERE trigger_name LIKE '%%_append_only' AND action_timing = 'BEFORE'"
            "  AND event_manipulation IN ('UPDATE', 'DELETE')"
            " GROUP BY event_object_table HAVING count(DISTINCT event_manipulation) = 2"
        )
        return {row[0] for row in cursor.fetchall()}


def test_every_history_table_has_the_trigger():
    tables = history_tables()
    # The clinical models with history: center, clinician profile, patient (+ its
    # hematologists), infusion, lab result, response, therapy, outcome.
    assert len(tables) >= 8
    assert "patients_historicallabresult" in tables
    assert set(tables) <= protected_tables(), set(tables) - protected_tables()


def test_the_database_refuses_to_rewrite_the_history(center, clinician):
    patient = PatientFactory(center=center, study_id="CT-0951")
    InfusionFactory(patient=patient, infusion_date=date(2025, 3, 1))
    result = LabResultFactory(patient=patient)
    before = list(LabResult.history.filter(id=result.pk).values_list("history_id", "value"))
    assert len(before) == 1

    for statement in (
        "UPDATE patients_historicallabresult SET value = 0.5",
        "UPDATE patients_historicalpatient SET study_id = 'CT-9999'",
        "DELETE FROM patients_historicallabresult",
        "DELETE FROM patients_historicalpatient",
    ):
        with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
            with connection.cursor() as cursor:
                cursor.execute(statement)
    assert list(LabResult.history.filter(id=result.pk).values_list("history_id", "value")) == (
        before
    )


def test_changes_and_deletes_still_add_history_rows(center):
    patient = PatientFactory(center=center, study_id="CT-0952")
    result = LabResultFactory(patient=patient)
    result.method = "corrected"
    result.save()
    pk = result.pk
    result.delete()
    assert list(
        LabResult.history.filter(id=pk)
        .order_by("history_date", "history_id")
        .values_list("history_type", flat=True)
    ) == ["+", "~", "-"]
    assert Patient.history.filter(id=patient.pk).count() == 1


def test_the_admin_deactivates_users_instead_of_deleting_them(admin_client, clinician):
    url = f"/admin/auth/user/{clinician.pk}/delete/"
    assert admin_client.get(url).status_code == 403
    assert admin_client.post(url, {"post": "yes"}).status_code == 403
    assert get_user_model().objects.filter(pk=clinician.pk).exists()
    page = admin_client.get(f"/admin/auth/user/{clinician.pk}/change/")
    assert page.status_code == 200
    assert b'name="is_active"' in page.content


def test_the_database_refuses_truncate_of_the_history_and_the_access_log(center, clinician):
    """Issue 21 finding 3: TRUNCATE is a statement, not a row operation; a statement trigger
    refuses it (audit 0003). The test database allows it for the suite's flush only."""
    PatientFactory(center=center, study_id="TR-001")  # a history row to lose
    tables = ["audit_accessevent", *history_tables()]
    assert len(tables) >= 10
    with connection.cursor() as cursor:
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")  # no pending FK checks of the test's rows
    for table in tables:
        with pytest.raises(DatabaseError, match="TRUNCATE of .* refused"):
            with transaction.atomic(), connection.cursor() as cursor:
                cursor.execute("SET LOCAL carttrack.allow_truncate = 'off'")
                cursor.execute(f"TRUNCATE {connection.ops.quote_name(table)} CASCADE")
    assert Patient.history.filter(study_id="TR-001").exists()
    # With the suite's setting (this session's default) the flush still works: a rolled-back
    # TRUNCATE of one history table goes through.
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("TRUNCATE patients_historicalpatient CASCADE")
        transaction.set_rollback(True)
