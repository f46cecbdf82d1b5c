"""JSON log lines with a request ID, carried into a real Celery worker; nothing clinical."""

from __future__ import annotations

import json
import logging

import pytest
from django.db import IntegrityError, transaction

from carttrack import logs
from tests.conftest import LOG_CAPTURE, demo_identifiers, log_leaks
from tests.factories import PatientFactory

pytestmark = pytest.mark.django_db


def _lines_with(request_id: str) -> list[dict]:
    return [
        json.loads(line)
        for line in LOG_CAPTURE.lines
        if line.startswith("{") and request_id in line
    ]


def test_a_sane_incoming_request_id_is_kept_echoed_and_logged(client):
    response = client.get("/health/live", HTTP_X_REQUEST_ID="lb-7f3a.2_9")
    assert response["X-Request-ID"] == "lb-7f3a.2_9"
    [line] = _lines_with("lb-7f3a.2_9")
    assert line["logger"] == "carttrack.access"
    assert line["message"].startswith("GET /health/live 200 ")
    assert line["view"] == "health_live"
    assert set(line) >= {"time", "level", "logger", "message", "request_id"}


@pytest.mark.parametrize(
    "incoming", ["", "has space", "x" * 65, "new\nline", "<script>", "ünïcode"]
)
def test_an_insane_request_id_is_replaced_by_a_new_one(client, incoming):
    response = client.get("/health/live", HTTP_X_REQUEST_ID=incoming)
    made = response["X-Request-ID"]
    assert made != incoming and len(made) == 32 and int(made, 16) >= 0
    assert _lines_with(made)


def test_the_query_string_is_not_logged(clinician_client):
    clinician_client.get("/patients/?q=SYN001+Synthetic")
    access = [line for line in LOG_CAPTURE.lines if "GET /patients/" in line][-1]
    assert "SYN001" not in access and "q=" not in access


def test_values_postgresql_echoes_in_an_error_are_blanked(center, caplog):
    PatientFactory(center=center, mrn="SYN042")
    with pytest.raises(IntegrityError) as caught, transaction.atomic():
        PatientFactory(center=center, mrn="SYN042")
    assert "SYN042" in str(caught.value)  # PostgreSQL says it ...
    logging.getLogger("carttrack.test").error("save failed: %s", caught.value, exc_info=True)
    [line] = [line for line in LOG_CAPTURE.lines if "save failed" in line]
    assert "SYN042" not in line  # ... the log line does not
    assert "Key (center_id, mrn)=(…)" in line


def test_the_scan_finds_a_demo_mrn_or_name_and_knows_the_whole_cohort():
    identifiers = demo_identifiers()
    assert {"SYN001", "SYN055", "Synthetic DEMO-001"} <= identifiers and len(identifiers) == 110
    lines = ['{"message": "patient SYN017 saved"}', '{"message": "for Synthetic DEMO-003"}']
    assert log_leaks([*lines, '{"message": "DEMO-003 saved"}'], identifiers) == lines


def test_the_capture_is_attached_to_every_logger():
    logging.getLogger("some.library").warning("capture probe 41d2")
    assert any("capture probe 41d2" in line for line in LOG_CAPTURE.lines)


@pytest.mark.celery_worker
def test_a_task_published_in_a_request_logs_its_request_id_in_the_worker(
    fresh_broker_pool, celery_worker_factory, wait_for
):
    from carttrack.tasks import beat_heartbeat

    worker = celery_worker_factory()
    fresh_broker_pool()
    token = logs.request_id_var.set("req-from-web-1")  # as RequestIDMiddleware sets it
    try:
        beat_heartbeat.delay()
    finally:
        logs.request_id_var.reset(token)
    wait_for(lambda: "beat heartbeat" in worker.log(), timeout=30, what="the task to run")
    [line] = [json.loads(x) for x in worker.log().splitlines() if "beat heartbeat" in x]
    assert line["request_id"] == "req-from-web-1"
    assert line["task"] == "carttrack.tasks.beat_heartbeat" and line["task_id"]
