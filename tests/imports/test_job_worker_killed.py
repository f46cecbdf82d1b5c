"""A real Celery worker killed (SIGKILL) mid-import: the job is queued again by the sweep and the
next worker imports the batch, once.

The worker is held inside the import's transaction by a lock on the lab results table, so it is
killed with rows checked but nothing committed. The data must be committed for the worker to see
it (transactional_db).
"""

from __future__ import annotations

from datetime import date, timedelta

import psycopg
import pytest
from django.db import connection
from django.utils import timezone
from rest_framework.test import APIClient

from imports import jobs
from imports.models import DONE, RUNNING, ImportJob
from patients.models import LabResult
from tests.conftest import worker_lost
from tests.factories import InfusionFactory, PatientFactory, UserFactory
from tests.imports.test_api_jobs_idempotency import URL, batch

pytestmark = [pytest.mark.celery_worker, pytest.mark.django_db(transaction=True)]

STALE_SECONDS = 3
FAST_HEARTBEAT = {"IMPORT_JOB_HEARTBEAT_SECONDS": "1"}


def _blocked_on_a_lock() -> int:
    """Sessions of the test database waiting for a lock (the worker's import)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND wait_event_type = 'Lock'"
        )
        return cursor.fetchone()[0]


def test_a_worker_killed_mid_import_is_re_queued_and_the_next_worker_imports_the_batch_once(
    celery_worker_factory, wait_for, center, roles, settings
):
    settings.IMPORT_JOB_STALE_SECONDS = STALE_SECONDS
    settings.IMPORT_JOB_RETRIES = 2
    sender = UserFactory(username="lab-killed-worker", center=center)
    sender.groups.add(roles["clinician"])
    patient = PatientFactory(center=center, study_id="CT-0101")
    InfusionFactory(patient=patient, infusion_date=date(2025, 3, 1))
    client = APIClient()
    client.force_authenticate(sender)
    worker = celery_worker_factory(extra_env=FAST_HEARTBEAT)

    db = connection.settings_dict
    blocker = psycopg.connect(
        host=db["HOST"] or "127.0.0.1", port=db["PORT"] or 5432, user=db["USER"], dbname=db["NAME"]
    )
    try:
        blocker.execute("LOCK TABLE patients_labresult IN SHARE MODE")  # reads pass, writes wait
        response = client.post(
            URL + "?async=1",
            batch("2025-03-08T08:00:00+01:00", "2025-03-15T08:00:00+01:00"),
            format="json",
            HTTP_IDEMPOTENCY_KEY="killed-1",
        )
        assert response.status_code == 202
        job = ImportJob.objects.get()
        wait_for(lambda: _blocked_on_a_lock() == 1, timeout=30, what="the worker to write")
        # Held inside the import, the worker's heartbeat thread stamps the job a second after
        # its claim: a sweep past the stale limit of the claim's stamp finds the job alive.
        job.refresh_from_db()
        claimed = job.heartbeat_at

        def beaten():
            job.refresh_from_db()
            return job.heartbeat_at - claimed >= timedelta(seconds=1)

        wait_for(beaten, timeout=30, what="a heartbeat while blocked")
        past_the_claim = claimed + timedelta(seconds=STALE_SECONDS + 0.5)
        assert jobs.import_jobs_sweep(now=past_the_claim) == (0, 0)  # the heartbeat: alive
        job.refresh_from_db()
        assert (job.status, job.attempts) == (RUNNING, 1), worker.log()

        worker_lost(worker, blocker)
    finally:
        blocker.rollback()
        blocker.close()
    assert LabResult.objects.count() == 0

    # The next worker listens on its own queue: the sweep's message goes there.
    next_worker = celery_worker_factory(extra_env=FAST_HEARTBEAT)
    # The dead worker's heartbeat stopped: the sweep, run past the stale limit, re-queues it.
    past_the_limit = timezone.now() + timedelta(seconds=STALE_SECONDS + 1)
    assert jobs.import_jobs_sweep(now=past_the_limit) == (1, 0)
    url = response.json()["url"]
    wait_for(
        lambda: client.get(url).json()["status"] in ("done", "failed"),
        timeout=30,
        what="the next worker to import the re-queued job",
    )
    answer = client.get(url).json()
    assert (answer["status"], answer["attempts"]) == (DONE, 2), next_worker.log()
    assert answer["result"]["saved"] == 4
    assert LabResult.objects.filter(patient=patient).count() == 4
