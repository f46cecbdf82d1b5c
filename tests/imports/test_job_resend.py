"""A background import whose message never reached a worker is not lost: with Redis down the
sender still gets its 202 (the job is stored, queued), and the sweep sends the job again once
it has waited IMPORT_JOB_STALE_SECONDS since its message was sent; a second message for a job a
worker already took does nothing.

Redis is real: down means a broker URL where nothing listens; up is the test Redis, whose
queue length shows that a message was really sent. (No frozen clock around the broker calls:
kombu's connection retries count wall-clock time.)"""

from __future__ import annotations

import time as clock
from datetime import timedelta

import pytest
import redis
from django.conf import settings as django_settings
from django.utils import timezone

from carttrack.celery import app
from imports import jobs
from imports.models import QUEUED, RUNNING, ImportJob
from imports.tasks import sweep_import_jobs
from tests.conftest import broker_unreachable
from tests.imports.test_api_jobs_idempotency import URL, batch, patient  # noqa: F401

STALE = timedelta(seconds=120)


def _queued_messages() -> int:
    queue = django_settings.CELERY_TASK_DEFAULT_QUEUE
    return redis.Redis.from_url(app.conf.broker_url).llen(queue)


def _take_newest_message() -> None:
    queue = django_settings.CELERY_TASK_DEFAULT_QUEUE
    redis.Redis.from_url(app.conf.broker_url).lpop(queue)  # kombu pushes on the left


@pytest.fixture
def stale_limit(settings):
    settings.IMPORT_JOB_STALE_SECONDS = 120


def test_with_redis_down_the_batch_is_accepted_and_sent_when_redis_is_back(
    lab_system,
    patient,  # noqa: F811
    stale_limit,
    caplog,
    django_capture_on_commit_callbacks,
):
    with broker_unreachable(), django_capture_on_commit_callbacks(execute=True):
        started = clock.monotonic()
        response = lab_system.post(
            URL + "?async=1",
            batch("2025-03-08T08:00:00+01:00", "2025-03-15T08:00:00+01:00"),
            format="json",
        )
        took = clock.monotonic() - started
    assert response.status_code == 202, response.json()
    assert took < 2.0, f"the request took {took:.1f} s with the broker down"
    assert "Could not enqueue import job" in caplog.text
    job = ImportJob.objects.get()
    assert job.status == QUEUED and job.enqueued_at is not None

    # Redis is back; the sweep runs every minute.
    sent_at = job.enqueued_at
    before = _queued_messages()
    with django_capture_on_commit_callbacks(execute=True):
        assert jobs.import_jobs_resend(now=sent_at + STALE) == 0  # exactly at the limit
    assert _queued_messages() == before
    caplog.clear()
    with django_capture_on_commit_callbacks(execute=True):
        assert jobs.import_jobs_resend(now=sent_at + STALE + timedelta(seconds=1)) == 1
    assert "Could not enqueue" not in caplog.text, caplog.text
    assert _queued_messages() == before + 1  # really on its way to a worker
    _take_newest_message()  # no later test's worker should receive it
    job.refresh_from_db()
    assert job.enqueued_at == sent_at + STALE + timedelta(seconds=1)
    # Just sent: the next minute's sweep leaves it alone.
    assert jobs.import_jobs_resend(now=job.enqueued_at + timedelta(seconds=60)) == 0


def test_a_job_a_worker_took_or_finished_is_never_sent_again(
    clinician, stale_limit, django_capture_on_commit_callbacks
):
    long_ago = timezone.now() - timedelta(days=1)
    for status in (RUNNING, "done", "failed"):
        ImportJob.objects.create(
            kind="lab_batch", user=clinician, status=status, enqueued_at=long_ago, heartbeat_at=None
        )
    ImportJob.objects.update(heartbeat_at=timezone.now())  # the running one is alive
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        assert jobs.import_jobs_resend() == 0
    assert callbacks == []


def test_a_job_from_before_the_stamp_is_judged_by_its_creation_time(
    clinician, stale_limit, django_capture_on_commit_callbacks
):
    job = ImportJob.objects.create(kind="lab_batch", user=clinician, enqueued_at=None)
    created = job.created_at
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        assert jobs.import_jobs_resend(now=created + STALE) == 0
        assert jobs.import_jobs_resend(now=created + STALE + timedelta(seconds=1)) == 1
    assert len(callbacks) == 1


def test_the_minute_sweep_task_also_sends_waiting_jobs_again(
    clinician, stale_limit, django_capture_on_commit_callbacks
):
    ImportJob.objects.create(
        kind="lab_batch", user=clinician, enqueued_at=timezone.now() - timedelta(minutes=5)
    )
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        sweep_import_jobs()
    assert len(callbacks) == 1
    assert ImportJob.objects.get().enqueued_at > timezone.now() - timedelta(minutes=1)
