"""History is not news, through the lab API: a two-year-old course sent today is recorded as
history and e-mails nobody; a sample from yesterday notifies the hematologist as today."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
import time_machine
from rest_framework.test import APIClient

from monitoring.models import Alert, Notification
from monitoring.selectors import alert_inbox
from tests.factories import InfusionFactory, PatientFactory

NOW = datetime(2027, 6, 1, 10, tzinfo=UTC)


@pytest.fixture
def followed_patient(center, clinician):
    patient = PatientFactory(center=center, study_id="CT-NEWS")
    patient.hematologists.add(clinician)
    return patient


def post(client, *samples):
    return client.post(
        "/api/v1/lab-results/",
        {
            "samples": [
                {
                    "study_id": "CT-NEWS",
                    "collected_at": when.isoformat(),
                    "values": [
                        {"analyte": "pb_bcell_abs", "unit": "cells/uL", **value},
                    ],
                }
                for when, value in samples
            ]
        },
        format="json",
    )


def course(infused: date):
    aplasia = datetime.combine(infused + timedelta(days=7), datetime.min.time(), UTC)
    regeneration = datetime.combine(infused + timedelta(days=30), datetime.min.time(), UTC)
    return (
        (aplasia.replace(hour=7), {"qualifier": "undetectable"}),
        (regeneration.replace(hour=7), {"value": "20"}),
    )


def test_a_two_year_old_course_through_the_api_is_history_with_zero_notifications(
    followed_patient, clinician, django_capture_on_commit_callbacks, settings
):
    settings.ALERT_STALE_AFTER_DAYS = 60  # the default: older than this before arrival is history
    InfusionFactory(patient=followed_patient, infusion_date=date(2025, 3, 3))
    with time_machine.travel(NOW, tick=False):
        client = APIClient()
        client.force_authenticate(clinician)
        with django_capture_on_commit_callbacks(execute=True):
            response = post(client, *course(date(2025, 3, 3)))
        assert response.status_code == 201, response.json()
        assert response.json()["alerts"] == {"active": 1, "historical": 1, "news": 0}
        alert = Alert.objects.get(patient=followed_patient)
        assert (alert.rule, alert.historical) == ("early_regeneration", True)
        assert Notification.objects.count() == 0
        assert list(alert_inbox(clinician)) == []


def test_a_current_sample_through_the_api_notifies_as_today(
    followed_patient, clinician, django_capture_on_commit_callbacks
):
    infused = (NOW - timedelta(days=31)).date()  # regeneration on day 30 = yesterday
    InfusionFactory(patient=followed_patient, infusion_date=infused)
    with time_machine.travel(NOW, tick=False):
        client = APIClient()
        client.force_authenticate(clinician)
        with django_capture_on_commit_callbacks(execute=False):
            response = post(client, *course(infused))
        assert response.status_code == 201, response.json()
        assert response.json()["alerts"] == {"active": 1, "historical": 0, "news": 1}
        alert = Alert.objects.get(patient=followed_patient)
        assert (alert.rule, alert.historical) == ("early_regeneration", False)
        assert list(Notification.objects.values_list("alert_id", "recipient_id")) == [
            (alert.pk, clinician.pk)
        ]
        assert list(alert_inbox(clinician)) == [alert]
