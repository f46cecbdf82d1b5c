"""Sending the outbox: one claim per message, what an e-mail may carry, failures and retries.

The notification rows are the ones a real alert leaves in the outbox (aplasia on day 7, B cells
back on day 30 after the infusion of 1 March 2025); the e-mails go to Django's test outbox.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from decimal import Decimal

import pytest
from django.conf import settings
from django.core import mail

from monitoring import channels
from monitoring.channels import TransientError
from monitoring.models import FAILED, PENDING, SENDING, SENT, Alert, Notification
from monitoring.notifications import (
    MAX_ATTEMPTS,
    STALE_CLAIM,
    notification_send,
    notifications_send_pending,
)
from patients.services import LabValue, lab_results_record
from patients.units import CELLS_PER_UL, PB_BCELL_ABS, UNDETECTABLE
from tests.conftest import FIXED_NOW
from tests.factories import BERLIN, InfusionFactory, PatientFactory, UserFactory

pytestmark = pytest.mark.usefixtures("frozen_now")

# A count no other number on the e-mail could be confused with.
REGENERATION_COUNT = Decimal("7.31")


@pytest.fixture
def patient(center, clinician):
    patient = PatientFactory(
        center=center, study_id="CT-0501", mrn="MRN-902113", full_name="Erika Mustermann"
    )
    patient.hematologists.add(clinician)
    InfusionFactory(patient=patient, infusion_date=date(2025, 3, 1))
    return patient


def raise_early_regeneration(patient) -> Alert:
    for on, value in ((date(2025, 3, 8), None), (date(2025, 3, 31), REGENERATION_COUNT)):
        lab_results_record(
            patient=patient,
            collected_at=datetime.combine(on, time(8), tzinfo=BERLIN),
            values=[
                LabValue(
                    PB_BCELL_ABS, value, CELLS_PER_UL, "" if value is not None else UNDETECTABLE
                )
            ],
            entered_by=None,
        )
    return Alert.objects.get(patient=patient, rule="early_regeneration")


@pytest.fixture
def notification(patient) -> Notification:
    alert = raise_early_regeneration(patient)
    return Notification.objects.get(alert=alert)


def test_a_notification_is_sent_once_however_often_it_is_asked_for(notification):
    assert notification_send(notification.pk) == SENT
    assert notification_send(notification.pk) is None

    assert len(mail.outbox) == 1
    notification.refresh_from_db()
    assert (notification.status, notification.attempts) == (SENT, 1)
    assert notification.sent_at == FIXED_NOW
    assert notifications_send_pending() == {}  # nothing left to send
    assert len(mail.outbox) == 1


def test_email_carries_study_id_title_severity_and_link_only(notification, patient):
    notification_send(notification.pk)

    (message,) = mail.outbox
    text = f"{message.subject}\n{message.body}"
    assert message.to == ["clinician@example.org"]
    assert "CT-0501" in text
    assert "Early B-cell regeneration" in text
    assert "High" in message.subject
    assert f"{settings.SITE_URL}/alerts/{notification.alert_id}/" in message.body
    # E-mail leaves the hospital: no name, no MRN, no lab value (CLINICAL.md section 4).
    for identifier in ("Erika", "Mustermann", "MRN-902113", "902113"):
        assert identifier not in text
    for value in ("7.31", "7,31"):
        assert value not in text
    assert not message.attachments and not getattr(message, "alternatives", [])


def test_recipient_without_email_fails_for_good(patient, center):
    no_address = UserFactory(username="no-address", email="", center=center)
    patient.hematologists.add(no_address)
    alert = raise_early_regeneration(patient)
    row = Notification.objects.get(alert=alert, recipient=no_address)

    assert notification_send(row.pk) == FAILED

    row.refresh_from_db()
    assert (row.status, row.attempts) == (FAILED, 1)
    assert "no e-mail address" in row.last_error
    assert notification_send(row.pk) is None  # a permanent error is not retried
    assert notifications_send_pending() == {SENT: 1}  # the clinician's, not this one
    row.refresh_from_db()
    assert row.attempts == 1
    assert [m.to for m in mail.outbox] == [["clinician@example.org"]]


def test_mail_server_down_leaves_the_message_pending_for_a_retry(notification, monkeypatch):
    def refused(*args, **kwargs):
        raise ConnectionRefusedError(111, "Connection refused")

    monkeypatch.setattr(channels, "send_mail", refused)
    assert notification_send(notification.pk) == PENDING
    notification.refresh_from_db()
    assert (notification.status, notification.attempts) == (PENDING, 1)
    assert "Connection refused" in notification.last_error
    assert notification.sent_at is None

    monkeypatch.undo()
    assert notification_send(notification.pk) == SENT
    notification.refresh_from_db()
    assert (notification.status, notification.attempts, notification.last_error) == (SENT, 2, "")
    assert len(mail.outbox) == 1


def test_a_transient_channel_error_is_retried_by_the_pending_sender(notification, monkeypatch):
    channel = channels.CHANNELS["email"]

    def busy(_notification):
        raise TransientError("421 service not available, try again later")

    monkeypatch.setattr(channel, "notify", busy)
    assert notifications_send_pending() == {PENDING: 1}
    notification.refresh_from_db()
    assert (notification.attempts, notification.last_error) == (
        1,
        "421 service not available, try again later",
    )

    monkeypatch.undo()
    assert notifications_send_pending() == {SENT: 1}
    notification.refresh_from_db()
    assert (notification.status, notification.attempts) == (SENT, 2)
    assert len(mail.outbox) == 1


def test_transient_errors_give_up_after_the_last_attempt(notification, monkeypatch):
    monkeypatch.setattr(
        channels.CHANNELS["email"],
        "notify",
        lambda n: (_ for _ in ()).throw(OSError("timed out")),
    )

    statuses = [notification_send(notification.pk) for _ in range(MAX_ATTEMPTS + 1)]

    assert statuses == [PENDING] * (MAX_ATTEMPTS - 1) + [FAILED, None]
    notification.refresh_from_db()
    assert (notification.status, notification.attempts) == (FAILED, MAX_ATTEMPTS)


def test_a_claim_left_by_a_crashed_sender_is_taken_over_when_stale(notification, frozen_now):
    # A sender claimed the row and died before sending.
    Notification.objects.filter(pk=notification.pk).update(
        status=SENDING, claimed_at=FIXED_NOW - timedelta(minutes=1)
    )
    assert notification_send(notification.pk) is None  # still someone else's
    assert notifications_send_pending() == {}
    assert mail.outbox == []

    frozen_now.shift(STALE_CLAIM)
    assert notification_send(notification.pk) == SENT

    notification.refresh_from_db()
    assert (notification.status, notification.attempts) == (SENT, 1)
    assert len(mail.outbox) == 1


def test_the_pending_sender_reclaims_stale_rows(notification):
    Notification.objects.filter(pk=notification.pk).update(
        status=SENDING, claimed_at=FIXED_NOW - STALE_CLAIM - timedelta(seconds=1)
    )

    assert notifications_send_pending() == {SENT: 1}
    assert len(mail.outbox) == 1


def test_sent_and_failed_rows_are_never_sent_again(notification):
    Notification.objects.filter(pk=notification.pk).update(
        status=SENT, claimed_at=FIXED_NOW - timedelta(days=1)
    )

    assert notification_send(notification.pk) is None
    Notification.objects.filter(pk=notification.pk).update(status=FAILED)
    assert notification_send(notification.pk) is None
    assert mail.outbox == []
