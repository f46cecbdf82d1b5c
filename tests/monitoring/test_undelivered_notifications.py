"""Issue 11: an alert e-mail that fails for good (5 attempts) is loud — on the alert page, in the
admin's "Undelivered" list, in the error log — and is sent again (once) when the cause is fixed.

The mail server is real SMTP to a closed port (connection refused), then Django's test outbox.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
import time_machine
from django.core import mail

from monitoring import notifications
from monitoring.models import FAILED, PENDING, SENT, Notification
from monitoring.notifications import MAX_ATTEMPTS, notifications_send_pending
from tests.conftest import FIXED_NOW
from tests.monitoring.test_notifications import raise_early_regeneration

pytestmark = pytest.mark.usefixtures("frozen_now")


@pytest.fixture
def patient(center, clinician):
    from datetime import date

    from tests.monitoring.test_notifications import InfusionFactory, PatientFactory

    patient = PatientFactory(center=center, study_id="CT-0777")
    patient.hematologists.add(clinician)
    InfusionFactory(patient=patient, infusion_date=date(2025, 3, 1))
    return patient


@pytest.fixture
def mail_server_down(settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_TIMEOUT = "127.0.0.1", 9, 2
    return settings


def _fail_for_good(patient, caplog) -> Notification:
    alert = raise_early_regeneration(patient)
    for _ in range(MAX_ATTEMPTS):
        notifications_send_pending()
    notification = Notification.objects.get(alert=alert)
    assert (notification.status, notification.attempts) == (FAILED, MAX_ATTEMPTS)
    assert "undeliverable" in caplog.text and "CT-0777" not in caplog.text
    return notification


def test_an_undeliverable_alert_shows_on_its_page_and_in_the_admin(
    patient, mail_server_down, caplog, clinician_client, admin_client
):
    notification = _fail_for_good(patient, caplog)
    page = clinician_client.get(notification.alert.get_absolute_url()).content.decode()
    assert 'data-testid="undelivered"' in page and "could not be delivered" in page
    assert "5 attempts" in page

    listing = admin_client.get("/admin/monitoring/notification/?delivery=undelivered")
    assert listing.status_code == 200
    assert f"/admin/monitoring/notification/{notification.pk}/change/" in listing.content.decode()
    # The record of what was (not) sent cannot be deleted or faked.
    assert admin_client.get(
        f"/admin/monitoring/notification/{notification.pk}/delete/"
    ).status_code in (403, 302)
    assert admin_client.get("/admin/monitoring/notification/add/").status_code == 403


def test_the_admin_retry_sends_it_once_after_the_mail_server_is_back(
    patient, mail_server_down, caplog, admin_client, settings
):
    notification = _fail_for_good(patient, caplog)
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    response = admin_client.post(
        "/admin/monitoring/notification/",
        {"action": "retry", "_selected_action": [notification.pk]},
    )
    assert response.status_code == 302
    notification.refresh_from_db()
    assert notification.status == PENDING  # queued again (sent after commit / by beat)
    notifications_send_pending()
    notifications_send_pending()
    notification.refresh_from_db()
    assert notification.status == SENT and len(mail.outbox) == 1
    assert notifications.notifications_retry(ids=[notification.pk]) == 0  # sent: nothing to retry


def test_beat_retries_what_failed_an_hour_ago_and_only_that(
    patient, mail_server_down, caplog, settings
):
    notification = _fail_for_good(patient, caplog)
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    settings.NOTIFICATION_RETRY_SECONDS = 3600
    with time_machine.travel(FIXED_NOW + timedelta(minutes=59), tick=False):
        assert notifications.notifications_retry_failed() == 0
    with time_machine.travel(FIXED_NOW + timedelta(minutes=61), tick=False):
        assert notifications.notifications_retry_failed() == 1
        notifications_send_pending()
    notification.refresh_from_db()
    assert notification.status == SENT and len(mail.outbox) == 1
