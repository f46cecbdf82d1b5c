"""The outbox end to end, with a real Celery worker (and beat) and real Redis.

A high alert must reach its hematologist's mailbox once, also when Redis was down at the moment
the alert was raised: the alert and its outbox row are committed with the lab result, and the
periodic sender delivers what could not be enqueued once Redis is back.
"""

from __future__ import annotations

import email
import socket
import subprocess
import time as clock
from datetime import date, datetime, time, timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from carttrack.celery import app
from monitoring import tasks
from monitoring.models import OPEN, SENT, Alert, Notification
from patients.services import LabValue, lab_results_record
from patients.units import CELLS_PER_UL, PB_BCELL_ABS, UNDETECTABLE
from tests.factories import BERLIN, InfusionFactory, LabResultFactory, PatientFactory

pytestmark = pytest.mark.celery_worker


@pytest.fixture
def fresh_broker_pool():
    """Publish on the broker the worker uses, not on one an earlier test connected to.

    The Celery app caches its broker connection pool on first use and the worker fixture does
    not reset it when it changes `broker_url`; drop it before the test and after the worker
    fixture has restored the URL (this fixture is set up before it, so torn down after it).
    """

    def reset():
        if app._pool is not None:
            app._pool.force_close_all()
        app._pool = None
        app.amqp._producer_pool = None

    reset()
    yield reset
    reset()


def record_regeneration(patient, *, infused: date) -> None:
    """Aplasia on day 7, B cells back on day 30: a high early-regeneration alert."""
    for day, value in ((7, None), (30, Decimal("7.31"))):
        collected_at = datetime.combine(infused + timedelta(days=day), time(8), tzinfo=BERLIN)
        lab_results_record(
            patient=patient,
            collected_at=collected_at,
            values=[
                LabValue(
                    PB_BCELL_ABS, value, CELLS_PER_UL, "" if value is not None else UNDETECTABLE
                )
            ],
            entered_by=None,
        )


def readable_text(mail: str) -> str:
    """The message's headers except Message-ID and Date (generated, with random digits),
    followed by its decoded body."""
    message = email.message_from_string(mail.split("\n" + "-" * 79 + "\n")[0])
    headers = "\n".join(
        f"{name}: {value}"
        for name, value in message.items()
        if name.lower() not in ("message-id", "date")
    )
    body = message.get_payload(decode=True).decode(message.get_content_charset() or "utf-8")
    return headers + "\n\n" + body


def patient_with_hematologist(study_id: str, center, hematologist, *, infused: date):
    patient = PatientFactory(center=center, study_id=study_id, full_name="Erika Mustermann")
    patient.hematologists.add(hematologist)
    InfusionFactory(patient=patient, infusion_date=infused)
    return patient


def test_worker_sends_the_alert_email_and_runs_the_sweep(
    fresh_broker_pool, celery_worker_factory, wait_for, center, clinician
):
    worker = celery_worker_factory()
    fresh_broker_pool()
    patient = patient_with_hematologist("CT-0601", center, clinician, infused=date(2025, 3, 1))

    record_regeneration(patient, infused=date(2025, 3, 1))

    alert = Alert.objects.get(patient=patient, rule="early_regeneration")
    wait_for(
        lambda: Notification.objects.filter(alert=alert, status=SENT).exists(),
        timeout=20,
        what="the worker to send the alert's e-mail",
    )
    (mail,) = worker.mails()
    assert "CT-0601" in mail and "Early B-cell regeneration" in mail
    # What a reader sees: every header but the generated ones (a Message-ID's random digits
    # once held "7.31"), and the body.
    readable = readable_text(mail)
    assert "CT-0601" in readable
    assert "Mustermann" not in readable and "7.31" not in readable
    assert Notification.objects.get(alert=alert).attempts == 1

    # A patient whose last count is overdue as of the real today. The worker process runs on
    # the real clock (time-machine cannot reach into it), so only this patient's dates are
    # relative to today: infused 20 days ago, last count on day 7, i.e. 13 days old. Stored
    # with factories, not the services, so that only the sweep can raise the reminder.
    today = timezone.localdate()
    overdue = patient_with_hematologist(
        "CT-0602", center, clinician, infused=today - timedelta(days=20)
    )
    LabResultFactory(
        patient=overdue,
        value=None,
        qualifier=UNDETECTABLE,
        collected_at=datetime.combine(today - timedelta(days=13), time(8), tzinfo=BERLIN),
    )
    assert not Alert.objects.filter(patient=overdue).exists()

    tasks.sweep_alerts.delay()

    wait_for(
        lambda: Notification.objects.filter(alert__patient=overdue, status=SENT).exists(),
        timeout=20,
        what="the sweep to raise the count-due reminder and send it",
    )
    reminder = Alert.objects.get(patient=overdue)
    assert (reminder.rule, reminder.status, reminder.day) == ("bcell_count_due", OPEN, 20)
    assert len(worker.mails()) == 2
    # The sweep left the first patient's alert as it was: no second e-mail about it.
    assert Notification.objects.filter(alert=alert).count() == 1


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _redis_server(port: int) -> subprocess.Popen:
    server = subprocess.Popen(
        [
            "redis-server",
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--daemonize",
            "no",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = clock.monotonic() + 10
    while clock.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5) as conn:
                conn.sendall(b"PING\r\n")
                if conn.recv(16).startswith(b"+PONG"):
                    return server
        except OSError:
            pass
        clock.sleep(0.1)
    server.kill()
    raise AssertionError(f"redis-server did not start on port {port}")


def _stop(server: subprocess.Popen) -> None:
    server.terminate()
    try:
        server.wait(timeout=10)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()


@pytest.fixture
def own_redis():
    """A redis-server of this test's own, which the test may stop and start again."""
    port = _free_port()
    servers = [_redis_server(port)]

    class OwnRedis:
        url = f"redis://127.0.0.1:{port}/0"

        def stop(self):
            _stop(servers[-1])

        def start(self):
            servers.append(_redis_server(port))

    yield OwnRedis()
    for server in servers:
        if server.poll() is None:
            _stop(server)


def test_alerts_raised_while_redis_is_down_are_emailed_once_it_is_back(
    fresh_broker_pool, own_redis, celery_worker_factory, wait_for, center, clinician, caplog
):
    worker = celery_worker_factory(
        redis_url=own_redis.url, beat=True, extra_env={"NOTIFICATION_SWEEP_SECONDS": "1"}
    )
    fresh_broker_pool()
    patients = [
        patient_with_hematologist(f"CT-070{n}", center, clinician, infused=date(2025, 3, 1))
        for n in (1, 2)
    ]

    own_redis.stop()
    for patient in patients:
        record_regeneration(patient, infused=date(2025, 3, 1))  # must not fail
        # Committed with the lab result, whatever the broker's state.
        assert Alert.objects.filter(
            patient=patient, rule="early_regeneration", status=OPEN
        ).exists()
    assert Notification.objects.filter(status="pending").count() == 2
    assert "Could not enqueue notifications" in caplog.text  # the enqueue did fail

    own_redis.start()

    wait_for(
        lambda: Notification.objects.filter(status=SENT).count() == 2,
        timeout=30,
        what="the periodic sender to deliver both e-mails after Redis came back",
    )
    clock.sleep(2)  # beat keeps running every second: nothing may be sent twice
    mails = worker.mails()
    assert len(mails) == 2
    assert sorted(m for mail in mails for m in ("CT-0701", "CT-0702") if m in mail) == [
        "CT-0701",
        "CT-0702",
    ]
    assert list(Notification.objects.values_list("status", "attempts")) == [(SENT, 1), (SENT, 1)]
