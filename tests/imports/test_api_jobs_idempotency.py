"""The lab API at laboratory speed: re-sent batches get the first answer, large batches become a
background job (202 and a job URL reporting progress and the result)."""

from __future__ import annotations

from datetime import date

import pytest
from rest_framework.test import APIClient

from imports.models import ImportJob
from patients.models import LabResult
from tests.factories import InfusionFactory, PatientFactory, UserFactory

URL = "/api/v1/lab-results/"


def batch(*times: str) -> dict:
    return {
        "samples": [
            {
                "study_id": "CT-0101",
                "collected_at": when,
                "values": [
                    {"analyte": "pb_bcell_abs", "qualifier": "undetectable", "unit": "cells/uL"},
                    {"analyte": "alc", "value": "0.9", "unit": "10^9/L"},
                ],
            }
            for when in times
        ]
    }


@pytest.fixture
def patient(center):
    patient = PatientFactory(center=center, study_id="CT-0101")
    InfusionFactory(patient=patient, infusion_date=date(2025, 3, 1))
    return patient


def test_a_re_sent_batch_with_its_key_gets_the_first_answer(lab_system, patient, frozen_now):
    body = batch("2025-03-08T08:00:00+01:00", "2025-03-15T08:00:00+01:00")
    first = lab_system.post(URL, body, format="json", HTTP_IDEMPOTENCY_KEY="lab-42")
    assert first.status_code == 201, first.json()
    again = lab_system.post(URL, body, format="json", HTTP_IDEMPOTENCY_KEY="lab-42")
    assert again.status_code == 201
    assert again.json() == first.json()
    assert again["Idempotent-Replayed"] == "true"
    assert LabResult.objects.count() == 4
    # Without a key the same batch is what it is: a duplicate, named by its place.
    refused = lab_system.post(URL, body, format="json")
    assert refused.status_code == 400
    assert "samples[0].collected_at" in refused.json()["errors"]


def test_the_same_key_with_another_batch_is_a_422_with_a_message(lab_system, patient, frozen_now):
    lab_system.post(
        URL, batch("2025-03-08T08:00:00+01:00"), format="json", HTTP_IDEMPOTENCY_KEY="k1"
    )
    response = lab_system.post(
        URL, batch("2025-03-09T08:00:00+01:00"), format="json", HTTP_IDEMPOTENCY_KEY="k1"
    )
    assert response.status_code == 422
    assert "already used for a different request" in response.json()["errors"]["Idempotency-Key"][0]
    assert LabResult.objects.count() == 2


def test_a_refused_batch_leaves_its_key_free_for_the_corrected_one(lab_system, patient, frozen_now):
    wrong = batch("2026-03-08T08:00:00+01:00")  # in the future
    assert lab_system.post(URL, wrong, format="json", HTTP_IDEMPOTENCY_KEY="k2").status_code == 400
    right = batch("2025-03-08T08:00:00+01:00")
    assert lab_system.post(URL, right, format="json", HTTP_IDEMPOTENCY_KEY="k3").status_code == 201
    # and the refused one's key was not stored: sending it corrected under k2 works too
    fixed = batch("2025-03-09T08:00:00+01:00")
    assert lab_system.post(URL, fixed, format="json", HTTP_IDEMPOTENCY_KEY="k2").status_code == 201


@pytest.mark.parametrize("how", ["query", "prefer", "size"])
def test_a_large_or_async_batch_is_answered_202_with_a_job_url(
    lab_system, patient, frozen_now, settings, how, django_capture_on_commit_callbacks
):
    kwargs, url = {}, URL
    if how == "query":
        url += "?async=1"
    elif how == "prefer":
        kwargs["HTTP_PREFER"] = "respond-async"
    else:
        settings.IMPORT_SYNC_MAX_SAMPLES = 1
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = lab_system.post(
            url,
            batch("2025-03-08T08:00:00+01:00", "2025-03-15T08:00:00+01:00"),
            format="json",
            **kwargs,
        )
    assert response.status_code == 202, response.json()
    assert len(callbacks) == 1  # the job is enqueued after commit
    job = ImportJob.objects.get()
    assert response["Location"] == response.json()["url"]
    assert response.json()["url"].endswith(f"/api/v1/jobs/{job.pk}/")
    status = lab_system.get(f"/api/v1/jobs/{job.pk}/").json()
    assert (status["status"], status["progress"]) == (
        "queued",
        {"phase": "queued", "done": 0, "total": 2},
    )
    assert LabResult.objects.count() == 0


def test_a_job_is_visible_to_its_sender_only(lab_system, patient, frozen_now, stranger):
    response = lab_system.post(URL + "?async=1", batch("2025-03-08T08:00:00+01:00"), format="json")
    other = APIClient()
    other.force_authenticate(stranger)
    assert other.get(response.json()["url"]).status_code == 404
    assert APIClient().get(response.json()["url"]).status_code in (401, 403)


@pytest.mark.celery_worker
def test_a_background_job_runs_on_a_real_worker_and_reports_its_result(
    celery_worker_factory, center, roles, wait_for
):
    clinician = UserFactory(username="lab-worker-user", center=center)
    clinician.groups.add(roles["clinician"])
    patient = PatientFactory(center=center, study_id="CT-0101")
    InfusionFactory(patient=patient, infusion_date=date(2025, 3, 1))
    client = APIClient()
    client.force_authenticate(clinician)
    celery_worker_factory()

    response = client.post(
        URL + "?async=1",
        batch("2025-03-08T08:00:00+01:00", "2025-03-15T08:00:00+01:00"),
        format="json",
        HTTP_IDEMPOTENCY_KEY="async-1",
    )
    assert response.status_code == 202
    url = response.json()["url"]
    wait_for(
        lambda: client.get(url).json()["status"] in ("done", "failed"),
        timeout=60,
        what="the import job",
    )
    final = client.get(url).json()
    assert final["status"] == "done", final
    assert final["result"]["saved"] == 4
    assert final["progress"] == {"phase": "done", "done": 2, "total": 2}
    assert LabResult.objects.filter(patient=patient).count() == 4
    replay = client.post(
        URL + "?async=1",
        batch("2025-03-08T08:00:00+01:00", "2025-03-15T08:00:00+01:00"),
        format="json",
        HTTP_IDEMPOTENCY_KEY="async-1",
    )
    assert (replay.status_code, replay.json()["url"]) == (202, url)


def test_an_idempotency_key_over_255_characters_is_refused_not_cut(lab_system, patient, frozen_now):
    """Issue 21: a key was cut at 255 characters, so two keys with one prefix collided."""
    prefix = "k" * 255
    body = batch("2025-03-08T08:00:00+01:00")
    at_limit = lab_system.post(URL, body, format="json", HTTP_IDEMPOTENCY_KEY=prefix)
    assert at_limit.status_code in (201, 202)
    stored = LabResult.objects.count()
    for key in (prefix + "A", prefix + "B"):
        response = lab_system.post(URL, body, format="json", HTTP_IDEMPOTENCY_KEY=key)
        assert response.status_code == 400
        assert "256 characters long; send one of at most 255" in str(response.json())
    assert LabResult.objects.count() == stored  # nothing saved by the refused requests
