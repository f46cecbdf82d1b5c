"""Idempotency keys expire after IDEMPOTENCY_KEY_DAYS: remembered on day 30, new after it, and
purged nightly in one statement."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
import time_machine

from imports.idempotency import keys_purge
from imports.models import IdempotencyKey
from imports.tasks import purge_idempotency_keys
from patients.models import LabResult
from tests.conftest import FIXED_NOW
from tests.factories import InfusionFactory, PatientFactory
from tests.imports.test_api_jobs_idempotency import URL, batch

FIRST = batch("2025-03-08T08:00:00+01:00")
OTHER = batch("2025-03-09T08:00:00+01:00")
THIRTY_DAYS = timedelta(days=30)


@pytest.fixture(autouse=True)
def thirty_days(settings):
    settings.IDEMPOTENCY_KEY_DAYS = 30


@pytest.fixture
def patient(center):
    patient = PatientFactory(center=center, study_id="CT-0101")
    InfusionFactory(patient=patient, infusion_date=date(2025, 3, 1))
    return patient


def _post(client, body, when):
    with time_machine.travel(when, tick=False):
        return client.post(URL, body, format="json", HTTP_IDEMPOTENCY_KEY="lab-run-1")


def test_a_key_exactly_thirty_days_old_still_gives_the_first_answer(lab_system, patient):
    first = _post(lab_system, FIRST, FIXED_NOW)
    assert first.status_code == 201
    again = _post(lab_system, FIRST, FIXED_NOW + THIRTY_DAYS)
    assert (again.status_code, again["Idempotent-Replayed"]) == (201, "true")
    assert again.json() == first.json()
    other = _post(lab_system, OTHER, FIXED_NOW + THIRTY_DAYS)
    assert other.status_code == 422  # still this batch's key
    assert LabResult.objects.count() == 2


def test_a_key_older_than_thirty_days_is_a_new_key(lab_system, patient):
    assert _post(lab_system, FIRST, FIXED_NOW).status_code == 201
    later = FIXED_NOW + THIRTY_DAYS + timedelta(seconds=1)
    # The same batch again is not replayed: as with any new key, it is a duplicate (nothing
    # saved), and the refusal leaves the old row as it was.
    again = _post(lab_system, FIRST, later)
    assert again.status_code == 400 and "Idempotent-Replayed" not in again
    assert IdempotencyKey.objects.get().created_at == FIXED_NOW
    # Another batch under the old key is accepted, and the key now answers for it.
    other = _post(lab_system, OTHER, later)
    assert other.status_code == 201, other.json()
    assert LabResult.objects.count() == 4
    row = IdempotencyKey.objects.get()
    assert (row.created_at, row.status_code, row.response) == (later, 201, other.json())
    replay = _post(lab_system, OTHER, later + timedelta(days=1))
    assert (replay.status_code, replay["Idempotent-Replayed"]) == (201, "true")


def test_the_nightly_purge_deletes_only_expired_keys_in_one_statement(
    clinician, django_assert_num_queries
):
    for age in (timedelta(days=31), THIRTY_DAYS + timedelta(seconds=1), THIRTY_DAYS, timedelta(0)):
        with time_machine.travel(FIXED_NOW - age, tick=False):
            IdempotencyKey.objects.create(
                sender=clinician,
                key=f"age-{age}",
                request_hash="0" * 64,
                status_code=201,
                response={},
            )
    with time_machine.travel(FIXED_NOW, tick=False), django_assert_num_queries(1):
        purge_idempotency_keys()
    kept = sorted(IdempotencyKey.objects.values_list("created_at", flat=True))
    assert kept == [FIXED_NOW - THIRTY_DAYS, FIXED_NOW]
    assert keys_purge(now=FIXED_NOW) == 0
    assert keys_purge(now=FIXED_NOW + timedelta(days=1)) == 1


def test_beat_purges_the_keys_nightly():
    from carttrack.celery import app

    schedule = {entry["task"]: entry["schedule"] for entry in app.conf.beat_schedule.values()}
    purge = schedule["imports.tasks.purge_idempotency_keys"]
    assert (purge.hour, purge.minute) == ({3}, {15})
    assert purge_idempotency_keys.name in app.tasks


def test_the_schema_says_how_long_a_key_is_remembered(lab_system):
    schema = lab_system.get("/api/schema/?format=json").json()
    for path in ("/api/v1/lab-results/", "/api/v1/fhir/"):
        [header] = [
            p for p in schema["paths"][path]["post"]["parameters"] if p["name"] == "Idempotency-Key"
        ]
        assert "remembered for 30 days" in header["description"]
        assert "treated as a new key" in header["description"]
