"""Import jobs whose worker died: the sweep at its time boundary, a re-queue then a failure after
the cap, and the claim and the conditional answer that keep a batch from being saved twice.

A worker "dies" here by raising a BaseException from inside the import, after the rows were
written in its transaction: like a SIGKILL, nothing reaches the job row and nothing is saved.
"""

from __future__ import annotations

import logging
import threading
from datetime import date, timedelta

import pytest
import time_machine
from django.db import connection
from rest_framework.test import APIClient

from carttrack.background import Heartbeat
from carttrack.celery import app
from imports import jobs
from imports.models import DONE, FAILED, QUEUED, RUNNING, ImportJob
from imports.services import records_import
from imports.tasks import sweep_import_jobs
from patients.models import LabResult
from tests.conftest import FIXED_NOW
from tests.factories import InfusionFactory, PatientFactory
from tests.imports.test_api_jobs_idempotency import batch

STALE = timedelta(seconds=120)
BODY = batch("2025-03-08T08:00:00+01:00", "2025-03-15T08:00:00+01:00")


class WorkerKilled(BaseException):
    """The process stopping mid-import: no `except Exception` sees it."""


@pytest.fixture
def limits(settings):
    settings.IMPORT_JOB_STALE_SECONDS = 120
    settings.IMPORT_JOB_RETRIES = 2


@pytest.fixture
def patient(center):
    patient = PatientFactory(center=center, study_id="CT-0101")
    InfusionFactory(patient=patient, infusion_date=date(2025, 3, 1))
    return patient


@pytest.fixture
def killer(monkeypatch):
    """Every import writes its rows, then its worker dies before the commit."""

    def write_then_die(**kwargs):
        records_import(**kwargs)
        assert LabResult.objects.count() == 4  # written in the import's transaction...
        raise WorkerKilled

    monkeypatch.setattr(jobs, "records_import", write_then_die)
    return monkeypatch


def _job(user, *, status=QUEUED, attempts=0, heartbeat_at=None) -> ImportJob:
    with time_machine.travel(FIXED_NOW, tick=False):
        return ImportJob.objects.create(
            kind="lab_batch",
            user=user,
            payload=BODY,
            total=2,
            status=status,
            attempts=attempts,
            heartbeat_at=heartbeat_at,
        )


def _die_at(job: ImportJob, when) -> None:
    """A worker takes the job at `when` and is killed mid-import."""
    with time_machine.travel(when, tick=False), pytest.raises(WorkerKilled):
        jobs.job_run(job_id=str(job.pk))
    job.refresh_from_db()
    assert (job.status, job.heartbeat_at) == (RUNNING, when)
    assert LabResult.objects.count() == 0  # ...and gone with it


def _status(client, job: ImportJob) -> dict:
    return client.get(f"/api/v1/jobs/{job.pk}/").json()


@pytest.fixture
def sender(clinician):
    client = APIClient()
    client.force_authenticate(clinician)
    return client


def test_a_running_job_is_re_queued_only_once_its_heartbeat_is_past_the_stale_limit(
    limits, clinician, django_capture_on_commit_callbacks
):
    job = _job(clinician, status=RUNNING, attempts=1, heartbeat_at=FIXED_NOW)
    with django_capture_on_commit_callbacks(execute=False) as enqueued:
        assert jobs.import_jobs_sweep(now=FIXED_NOW + STALE) == (0, 0)  # exactly at the limit
    job.refresh_from_db()
    assert job.status == RUNNING and enqueued == []
    with django_capture_on_commit_callbacks(execute=False) as enqueued:
        assert jobs.import_jobs_sweep(now=FIXED_NOW + STALE + timedelta(seconds=1)) == (1, 0)
    job.refresh_from_db()
    assert (job.status, job.attempts, job.finished_at) == (QUEUED, 1, None)
    assert len(enqueued) == 1  # sent to the workers again, after commit


def test_a_job_that_never_beat_is_judged_by_its_creation_time(limits, clinician):
    """A job left running before the heartbeat existed (no stamp) is not left forever."""
    job = _job(clinician, status=RUNNING, attempts=0)
    assert jobs.import_jobs_sweep(now=FIXED_NOW + STALE) == (0, 0)
    assert jobs.import_jobs_sweep(now=FIXED_NOW + STALE + timedelta(seconds=1)) == (1, 0)
    job.refresh_from_db()
    assert job.status == QUEUED


def test_a_job_whose_worker_dies_is_re_queued_twice_then_failed_with_a_plain_message(
    limits, clinician, patient, sender, killer, caplog, django_capture_on_commit_callbacks
):
    job = _job(clinician)
    when = FIXED_NOW
    for attempt in (1, 2):
        _die_at(job, when)
        when += STALE + timedelta(seconds=1)
        with django_capture_on_commit_callbacks(execute=False) as enqueued:
            assert jobs.import_jobs_sweep(now=when) == (1, 0)
        assert len(enqueued) == 1
        job.refresh_from_db()
        assert (job.status, job.attempts) == (QUEUED, attempt)
        answer = _status(sender, job)
        assert (answer["status"], answer["attempts"]) == ("queued", attempt)
        assert f"stopped during attempt {attempt} of 3; nothing was saved" in answer["detail"]
        assert "queued again" in answer["detail"]

    _die_at(job, when)
    caplog.set_level(logging.ERROR, logger="imports.jobs")
    with django_capture_on_commit_callbacks(execute=False) as enqueued:
        assert jobs.import_jobs_sweep(now=when + STALE + timedelta(seconds=1)) == (0, 1)
    assert enqueued == []  # never queued a third time
    job.refresh_from_db()
    assert (job.status, job.attempts) == (FAILED, 3)
    assert job.finished_at == when + STALE + timedelta(seconds=1)
    answer = _status(sender, job)
    assert answer["status"] == "failed" and "detail" not in answer
    assert answer["progress"] == {"phase": "failed", "done": 2, "total": 2}
    message = answer["result"]["detail"]
    assert message == (
        "The worker importing this batch stopped before it finished, 3 times (e.g. it was "
        "restarted or ran out of memory); nothing was saved. Send the batch again with a new "
        "Idempotency-Key."
    )
    assert answer["result"]["errors"] == {"request": [message]}
    assert answer["result"]["saved"] == 0
    [record] = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert str(job.pk) in record.getMessage() and "stopped 3 times" in record.getMessage()

    # A message the broker redelivers later finds the job failed: nothing is imported.
    killer.undo()
    jobs.job_run(job_id=str(job.pk))
    job.refresh_from_db()
    assert (job.status, job.attempts) == (FAILED, 3)
    assert LabResult.objects.count() == 0


def test_a_re_queued_job_is_imported_once_though_two_messages_ask_for_it(
    limits, clinician, patient, sender, killer
):
    """The sweep's message and the broker's redelivery of the first both reach a worker: the
    claim lets one of them import; the other finds the job no longer queued."""
    job = _job(clinician)
    _die_at(job, FIXED_NOW)
    assert jobs.import_jobs_sweep(now=FIXED_NOW + STALE + timedelta(seconds=1)) == (1, 0)
    killer.undo()
    with time_machine.travel(FIXED_NOW + timedelta(minutes=5), tick=False):
        jobs.job_run(job_id=str(job.pk))  # the sweep's message
        jobs.job_run(job_id=str(job.pk))  # the first message, redelivered
        answer = _status(sender, job)
    assert (answer["status"], answer["attempts"], answer["result"]["saved"]) == ("done", 2, 4)
    assert "detail" not in answer
    assert LabResult.objects.count() == 4


@pytest.mark.parametrize("status", [DONE, FAILED, QUEUED])
def test_a_job_not_running_is_never_touched(limits, clinician, status):
    job = _job(clinician, status=status, attempts=1, heartbeat_at=FIXED_NOW - timedelta(days=1))
    ImportJob.objects.filter(pk=job.pk).update(result={"saved": 4}, finished_at=FIXED_NOW)
    assert jobs.import_jobs_sweep(now=FIXED_NOW + timedelta(days=1)) == (0, 0)
    job.refresh_from_db()
    assert (job.status, job.attempts, job.result, job.finished_at) == (
        status,
        1,
        {"saved": 4},
        FIXED_NOW,
    )


def test_a_running_job_with_a_fresh_heartbeat_is_left_alone_even_at_the_cap(limits, clinician):
    job = _job(clinician, status=RUNNING, attempts=3, heartbeat_at=FIXED_NOW)
    assert jobs.import_jobs_sweep(now=FIXED_NOW + timedelta(seconds=30)) == (0, 0)
    job.refresh_from_db()
    assert (job.status, job.result) == (RUNNING, {})


def test_a_spreadsheet_job_failed_by_the_sweep_refuses_its_upload_with_the_message(
    limits, clinician
):
    from imports.models import IMPORTING, REFUSED, SpreadsheetUpload

    job = _job(clinician, status=RUNNING, attempts=3, heartbeat_at=FIXED_NOW)
    ImportJob.objects.filter(pk=job.pk).update(kind="spreadsheet")
    upload = SpreadsheetUpload.objects.create(
        user=clinician, file_name="big.xlsx", file_hash="0" * 64, status=IMPORTING, job=job
    )
    assert jobs.import_jobs_sweep(now=FIXED_NOW + timedelta(hours=1)) == (0, 1)
    upload.refresh_from_db()
    assert upload.status == REFUSED
    [problem] = upload.preview["problems"]
    assert "nothing was saved. Upload the file again." in problem["message"]


@pytest.mark.django_db(transaction=True)
def test_an_attempt_the_sweep_gave_away_saves_nothing(limits, center, roles, monkeypatch):
    """A worker silent too long (paused, cut off) but not dead finishes its import after the
    sweep re-queued the job: its answer is refused and its rows roll back, so the batch is
    saved once, by the next attempt."""
    from tests.factories import UserFactory

    user = UserFactory(username="paused-worker", center=center)
    user.groups.add(roles["clinician"])
    patient = PatientFactory(center=center, study_id="CT-0101")
    InfusionFactory(patient=patient, infusion_date=date(2025, 3, 1))
    job = _job(user)
    monkeypatch.setattr(jobs, "_job_enqueue", lambda job: None)  # no broker message

    def import_then_lose_the_job(**kwargs):
        outcome = records_import(**kwargs)
        # Meanwhile, on its own connection, the sweep finds the heartbeat old and re-queues.
        sweep = threading.Thread(target=_sweep_in_an_hour)
        sweep.start()
        sweep.join()
        return outcome

    monkeypatch.setattr(jobs, "records_import", import_then_lose_the_job)
    jobs.job_run(job_id=str(job.pk))
    job.refresh_from_db()
    assert (job.status, job.attempts, job.result) == (QUEUED, 1, {})
    assert LabResult.objects.count() == 0

    monkeypatch.setattr(jobs, "records_import", records_import)
    jobs.job_run(job_id=str(job.pk))
    job.refresh_from_db()
    assert (job.status, job.attempts, job.result["saved"]) == (DONE, 2, 4)
    assert LabResult.objects.count() == 4


def _sweep_in_an_hour() -> None:
    try:
        assert jobs.import_jobs_sweep(now=FIXED_NOW + timedelta(days=365 * 10)) == (1, 0)
    finally:
        connection.close()


@pytest.mark.django_db(transaction=True)
def test_the_heartbeat_stamps_the_job_only_while_this_attempt_owns_it(clinician):
    job = _job(clinician, status=RUNNING, attempts=1, heartbeat_at=FIXED_NOW)
    other = _job(clinician, status=RUNNING, attempts=2, heartbeat_at=FIXED_NOW)
    with Heartbeat(ImportJob.objects.filter(pk=job.pk, status=RUNNING, attempts=1), every=0.05):
        threading.Event().wait(0.5)
        job.refresh_from_db()
        assert job.heartbeat_at > FIXED_NOW
        ImportJob.objects.filter(pk=job.pk).update(status=QUEUED, heartbeat_at=FIXED_NOW)
        threading.Event().wait(0.3)
    job.refresh_from_db()
    other.refresh_from_db()
    assert job.heartbeat_at == FIXED_NOW  # taken away: never stamped alive again
    assert other.heartbeat_at == FIXED_NOW


def test_beat_runs_the_sweep_every_minute(limits):
    schedule = {entry["task"]: entry["schedule"] for entry in app.conf.beat_schedule.values()}
    assert schedule["imports.tasks.sweep_import_jobs"] == 60.0
    assert sweep_import_jobs.name in app.tasks


def test_the_sweep_task_calls_the_sweep(limits, clinician):
    job = _job(clinician, status=RUNNING, attempts=1, heartbeat_at=FIXED_NOW)
    with time_machine.travel(FIXED_NOW + STALE + timedelta(seconds=1), tick=False):
        sweep_import_jobs()
    job.refresh_from_db()
    assert job.status == QUEUED
