"""The second channel: a center's signed webhook for high alerts, through the same outbox.

A small HTTP server started here on a free 127.0.0.1 port receives the POSTs: it verifies the
HMAC-SHA256 signature of "<timestamp>.<body>" with the shared secret, answers 500 first (the
outbox retries after its backoff) and 200 then; the alert is delivered once, with the e-mail's
pseudonymous content and never a name, MRN or lab value.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from datetime import date, datetime, timedelta
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
import time_machine

from monitoring import notifications
from monitoring.models import PENDING, SENT, Alert, CenterAlerting, Notification
from patients.services import LabValue, lab_results_record
from patients.units import CELLS_PER_UL, PB_BCELL_ABS, UNDETECTABLE
from tests.factories import BERLIN, InfusionFactory, PatientFactory

SECRET = "s3cret-of-the-paging-system"
NOW = datetime(2025, 4, 1, 9, tzinfo=BERLIN)


class Receiver:
    def __init__(self, answers: list[int]):
        self.answers, self.received = list(answers), []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                stamp = self.headers["X-CARTtrack-Timestamp"]
                expected = hmac.new(
                    SECRET.encode(), stamp.encode() + b"." + body, hashlib.sha256
                ).hexdigest()
                valid = hmac.compare_digest(
                    self.headers["X-CARTtrack-Signature"], f"sha256={expected}"
                )
                receiver.received.append((valid, int(stamp), json.loads(body)))
                code = receiver.answers.pop(0) if receiver.answers else 200
                self.send_response(code if valid else 401)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver(center):
    found = Receiver([500, 200])
    CenterAlerting.objects.create(center=center, webhook_url=found.url, webhook_secret=SECRET)
    yield found
    found.stop()


def raise_high_alert(center, clinician) -> Alert:
    patient = PatientFactory(center=center, study_id="CT-HOOK", full_name="Erika Mustermann")
    patient.mrn = "MRN-4711"
    patient.save()
    patient.hematologists.add(clinician)
    InfusionFactory(patient=patient, infusion_date=date(2025, 3, 1))
    for day, value in ((7, None), (30, Decimal("7.31"))):
        lab_results_record(
            patient=patient,
            collected_at=datetime(2025, 3, 1, 8, tzinfo=BERLIN) + timedelta(days=day),
            values=[
                LabValue(
                    PB_BCELL_ABS, value, CELLS_PER_UL, "" if value is not None else UNDETECTABLE
                )
            ],
            entered_by=None,
        )
    return Alert.objects.get(patient=patient, rule="early_regeneration")


def test_a_high_alert_is_posted_signed_retried_after_a_500_and_delivered_once(
    receiver, center, clinician, settings, django_capture_on_commit_callbacks
):
    settings.NOTIFICATION_BACKOFF_SECONDS = 30
    with time_machine.travel(NOW, tick=False), django_capture_on_commit_callbacks(execute=False):
        alert = raise_high_alert(center, clinician)
    (hook,) = Notification.objects.filter(alert=alert, channel="webhook")
    assert hook.recipient is None
    # Only the high alert has a webhook row (the count-due reminder is e-mailed only).
    assert Notification.objects.filter(channel="webhook").count() == 1

    with time_machine.travel(NOW, tick=False):
        notifications.notifications_send_pending()
    hook.refresh_from_db()
    assert (hook.status, hook.attempts, hook.last_error) == (PENDING, 1, "the webhook answered 500")
    with time_machine.travel(NOW + timedelta(seconds=29), tick=False):
        notifications.notifications_send_pending()  # inside the backoff: not tried
    assert len(receiver.received) == 1
    with time_machine.travel(NOW + timedelta(seconds=31), tick=False):
        notifications.notifications_send_pending()
        notifications.notifications_send_pending()  # sent: never again
    hook.refresh_from_db()
    assert (hook.status, hook.attempts) == (SENT, 2)
    assert len(receiver.received) == 2

    valid, stamp, body = receiver.received[-1]
    assert valid and stamp == int((NOW + timedelta(seconds=31)).timestamp())
    assert body == {
        "alert_id": alert.pk,
        "study_id": "CT-HOOK",
        "title": alert.title,
        "severity": "high",
        "link": f"{settings.SITE_URL}/alerts/{alert.pk}/",
        "late": "collected 1 day before it arrived",  # day 30 entered on day 31
        "escalation_step": 0,
        "notification_id": hook.pk,
    }
    raw = json.dumps(body)
    assert "Mustermann" not in raw and "MRN-4711" not in raw and "7.31" not in raw


def test_a_wrong_secret_is_refused_by_the_receiver_and_not_retried_forever(
    receiver, center, clinician
):
    CenterAlerting.objects.filter(center=center).update(webhook_secret="not-the-secret")
    with time_machine.travel(NOW, tick=False):
        alert = raise_high_alert(center, clinician)
        notifications.notifications_send_pending()
    hook = Notification.objects.get(alert=alert, channel="webhook")
    assert receiver.received[0][0] is False  # the signature did not verify
    assert (hook.status, hook.last_error) == ("failed", "the webhook answered 401")
