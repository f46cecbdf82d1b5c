"""Fault: Redis stopped while a laboratory system posts 1,000 results through the API.

Every result is stored (the API never waits on the broker), every alert due is raised with its
result, and once Redis is back the worker (with beat) sends each alert's e-mail exactly once.
"""

from __future__ import annotations

import time as clock
from datetime import date, datetime, time, timedelta

import pytest

from monitoring.models import SENT, Alert, Notification
from patients.models import LabResult
from tests.conftest import token_client
from tests.factories import BERLIN
from tests.monitoring.test_worker_integration import patient_with_hematologist

pytestmark = pytest.mark.celery_worker

PATIENTS, RESULTS_EACH = 100, 10  # 1,000 lab results, one API request each
INFUSED = date(2025, 3, 1)


def _result(study_id: str, day: int, detectable: bool) -> dict:
    when = datetime.combine(INFUSED + timedelta(days=day), time(8), tzinfo=BERLIN)
    value = (
        {"analyte": "pb_bcell_abs", "value": "7.31", "unit": "cells/uL"}
        if detectable
        else {"analyte": "pb_bcell_abs", "qualifier": "undetectable", "unit": "cells/uL"}
    )
    return {
        "samples": [{"study_id": study_id, "collected_at": when.isoformat(), "values": [value]}]
    }


def test_redis_down_during_1000_api_lab_saves(
    fresh_broker_pool,
    own_redis,
    celery_worker_factory,
    wait_for,
    center,
    clinician,
    caplog,
    settings,
):
    # The worker runs on the real clock, so the course is dated 2025 and arrives today: under
    # the 60-day staleness limit it would be history (never e-mailed). Here it must be news: the
    # fault under test is Redis, not the age of the results.
    settings.ALERT_STALE_AFTER_DAYS = 100_000
    worker = celery_worker_factory(
        redis_url=own_redis.url, beat=True, extra_env={"NOTIFICATION_SWEEP_SECONDS": "1"}
    )
    fresh_broker_pool()
    study_ids = [f"CT-F{n:03d}" for n in range(PATIENTS)]
    for study_id in study_ids:
        patient_with_hematologist(study_id, center, clinician, infused=INFUSED)
    api = token_client(clinician)

    own_redis.stop()
    started = clock.monotonic()
    statuses = []
    # Days 1-9 undetectable (aplasia); day 30 detectable for every other patient: 50 early
    # regenerations, each one high alert and one e-mail to the patient's hematologist.
    for n, study_id in enumerate(study_ids):
        for day in range(1, RESULTS_EACH):
            statuses.append(
                api.post(
                    "/api/v1/lab-results/", _result(study_id, day, False), format="json"
                ).status_code
            )
        statuses.append(
            api.post(
                "/api/v1/lab-results/", _result(study_id, 30, n % 2 == 0), format="json"
            ).status_code
        )
    elapsed = clock.monotonic() - started
    assert statuses == [201] * 1000, sorted(set(statuses))
    assert LabResult.objects.count() == 1000
    assert Alert.objects.filter(rule="early_regeneration").count() == PATIENTS // 2
    assert Notification.objects.filter(status="pending").count() == PATIENTS // 2
    assert "Could not enqueue notifications" in caplog.text
    print(f"1,000 API lab saves with Redis down: {elapsed:.1f} s")

    own_redis.start()
    wait_for(
        lambda: Notification.objects.filter(status=SENT).count() == PATIENTS // 2,
        timeout=120,
        what="every e-mail after Redis came back",
    )
    clock.sleep(3)  # beat keeps running every second: nothing may be sent twice
    mails = worker.mails()
    assert len(mails) == PATIENTS // 2
    told = sorted(
        s for mail in mails for s in study_ids[::2] if f" {s} " in mail or f"{s}:" in mail
    )
    assert told == study_ids[::2]
    assert set(Notification.objects.values_list("status", "attempts")) == {(SENT, 1)}
    assert Alert.objects.count() == PATIENTS // 2  # nothing raised twice
