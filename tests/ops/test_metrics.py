"""/metrics: only for the configured token or addresses; parsed with prometheus_client's parser."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import time_machine
from prometheus_client.parser import text_string_to_metric_families

from analytics.models import DashboardSnapshot
from carttrack.celery_signals import task_run_record
from imports.held import held_result_record
from imports.models import HL7Message, ImportJob
from monitoring.models import Alert, Notification
from tests.factories import LabResultFactory, PatientFactory

pytestmark = pytest.mark.django_db
T0 = datetime(2025, 11, 3, 10, 0, tzinfo=UTC)


def _scrape(client, **headers) -> dict[tuple[str, tuple], float]:
    response = client.get("/metrics", **headers)
    assert response.status_code == 200, response.status_code
    assert response["Content-Type"].startswith("text/plain; version=")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.content.decode())
        for sample in family.samples
    }


@pytest.fixture
def token(settings):
    settings.METRICS_TOKEN = "scrape-token-5c1e"
    settings.METRICS_ALLOWED_IPS = []
    return {"HTTP_AUTHORIZATION": "Bearer scrape-token-5c1e"}


def test_metrics_are_hidden_without_the_token_or_an_allowed_address(client, settings):
    settings.METRICS_TOKEN, settings.METRICS_ALLOWED_IPS = "", []
    assert client.get("/metrics").status_code == 404  # off: neither is configured
    settings.METRICS_TOKEN = "right-token"
    assert client.get("/metrics").status_code == 404
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong-token").status_code == 404
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer right-token").status_code == 200
    settings.METRICS_ALLOWED_IPS = ["10.0.5.0/24"]
    assert client.get("/metrics", REMOTE_ADDR="10.0.6.9").status_code == 404
    assert client.get("/metrics", REMOTE_ADDR="10.0.5.9").status_code == 200
    # Behind one trusted proxy the client is the address the proxy appended.
    settings.TRUSTED_PROXY_COUNT = 1
    forwarded = {"REMOTE_ADDR": "10.0.5.1", "HTTP_X_FORWARDED_FOR": "203.0.113.7"}
    assert client.get("/metrics", **forwarded).status_code == 404


def test_requests_are_counted_by_view_and_status(client, token):
    key = (
        "carttrack_http_requests_total",
        (("method", "GET"), ("status", "200"), ("view", "health_live")),
    )
    before = _scrape(client, **token).get(key, 0)
    client.get("/health/live")
    client.get("/health/live")
    client.get("/no/such/page/")
    after = _scrape(client, **token)
    assert after[key] == before + 2
    unresolved = (
        "carttrack_http_requests_total",
        (("method", "GET"), ("status", "404"), ("view", "unresolved")),
    )
    assert after[unresolved] >= 1
    assert after[("carttrack_http_request_duration_seconds_count", (("view", "health_live"),))] >= 2


def test_product_metrics_are_read_from_the_database_at_scrape_time(
    client, token, center, clinician
):
    with time_machine.travel(T0, tick=False) as clock:
        patient = PatientFactory(center=center)
        LabResultFactory(patient=patient)
        common = {"patient": patient, "infusion_number": 1, "title": "t", "day": 30}
        early = Alert.objects.create(
            rule="early_regeneration", severity="high", rule_version="v1", **common
        )
        Alert.objects.create(
            rule="mrd_positive", severity="info", rule_version="v1", status="closed", **common
        )
        Alert.objects.create(
            rule="bcell_count_due",
            severity="reminder",
            rule_version="v1",
            historical=True,
            **common,
        )
        for status in ("pending", "pending", "failed", "sent"):
            Notification.objects.create(alert=early, recipient=clinician, status=status)
        Notification.objects.create(
            alert=early, recipient=clinician, status="sent", escalation_step=1
        )
        for status in ("queued", "running", "done", "done", "failed"):
            ImportJob.objects.create(kind="lab_batch", user=clinician, status=status)
        DashboardSnapshot.objects.create(
            cohort_key="all",
            cohort_label="All",
            data_version="1",
            n_patients=1,
            report={},
            figures={},
            duration_ms=2500,
        )
        task_run_record(name="monitoring.tasks.sweep_alerts_chunk", seconds=1.25)
        for control_id, ack in (("1", "AA"), ("2", "AA"), ("3", "AE")):
            HL7Message.objects.create(
                sending_application="LIS", control_id=control_id, raw="MSH|...", ack_code=ack
            )
        held_result_record(
            center=center, source="hl7", sender="LIS", reason="unknown_patient",
            reason_text="No patient with this identifier", identifier="X-1", code="CD19",
            value="5", unit="/uL", collected_at_text="20260101", raw="OBX|1|NM|...",
        )
        clock.shift(3600)
        m = _scrape(client, **token)

    def gauge(name, **labels):
        return m[(name, tuple(sorted(labels.items())))]

    assert gauge("carttrack_alerts_raised", rule="early_regeneration", severity="high") == 1
    assert gauge("carttrack_alerts_raised", rule="mrd_positive", severity="info") == 1
    assert (
        "carttrack_alerts_raised",
        (("rule", "bcell_count_due"), ("severity", "reminder")),
    ) not in m
    assert gauge("carttrack_alerts_active", rule="early_regeneration", severity="high") == 1
    assert ("carttrack_alerts_active", (("rule", "mrd_positive"), ("severity", "info"))) not in m
    assert gauge("carttrack_notifications", status="pending") == 2
    assert gauge("carttrack_notifications", status="failed") == 1
    assert gauge("carttrack_notifications_escalated", step="1", status="sent") == 1
    assert gauge("carttrack_notification_oldest_unsent_age_seconds") == 3600
    assert gauge("carttrack_import_jobs", status="done") == 2
    assert gauge("carttrack_import_jobs", status="queued") == 1
    assert gauge("carttrack_import_job_oldest_queued_age_seconds") == 3600
    assert gauge("carttrack_lab_result_newest_age_seconds") == 3600
    assert gauge("carttrack_snapshot_newest_age_seconds") == 3600
    assert gauge("carttrack_snapshot_duration_seconds") == 2.5
    assert gauge("carttrack_hl7_messages", ack_code="AA") == 2
    assert gauge("carttrack_hl7_messages", ack_code="AE") == 1
    assert gauge("carttrack_hl7_newest_message_age_seconds") == 3600
    assert gauge("carttrack_held_results", state="held", source="hl7") == 1
    sweep = "monitoring.tasks.sweep_alerts_chunk"
    assert gauge("carttrack_task_last_duration_seconds", task=sweep) == 1.25
    assert gauge("carttrack_task_last_success_age_seconds", task=sweep) == 3600
    assert "carttrack_celery_workers" in {name for name, _ in m}
    assert not any("SYN" in str(labels) or patient.study_id in str(labels) for _, labels in m)


def test_gunicorn_workers_add_up_in_one_scrape(tmp_path):
    """Two gunicorn worker processes, prometheus_client's multiprocess folder: the scrape counts
    the requests of every worker process (from the folder), not only its own."""
    import os
    import socket
    import subprocess
    import sys
    import time
    import urllib.request

    from django.db import connection

    from tests.faults.test_postgres_restart import ROOT, _free_port

    db = connection.settings_dict
    port, folder = _free_port(), tmp_path / "prometheus"
    folder.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    env.update(
        DATABASE_URL=f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}"
        f"/{db['NAME']}",
        PROMETHEUS_MULTIPROC_DIR=str(folder),
        METRICS_TOKEN="t0k3n",
        SECRET_KEY="x",
    )
    log = open(tmp_path / "gunicorn.log", "w")
    command = [sys.executable, "-m", "gunicorn", "carttrack.wsgi", "-b", f"127.0.0.1:{port}"]
    app = subprocess.Popen(
        [*command, "-w", "2"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.2)
        for _ in range(12):
            with urllib.request.urlopen(base + "/health/live", timeout=30) as response:
                assert response.status == 200
        assert list(folder.glob("counter_*.db"))  # the workers wrote their counts there
        scrape = urllib.request.Request(
            base + "/metrics", headers={"Authorization": "Bearer t0k3n"}
        )
        with urllib.request.urlopen(scrape, timeout=30) as response:
            text = response.read().decode()
        [value] = [
            sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples
            if sample.name == "carttrack_http_requests_total"
            and sample.labels == {"view": "health_live", "method": "GET", "status": "200"}
        ]
        assert value == 12
    finally:
        app.terminate()
        app.wait(timeout=20)
        log.close()
