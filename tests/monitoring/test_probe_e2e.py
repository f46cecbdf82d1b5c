"""The end-to-end probe (issue 18): a true high alert must reach a clinician who can act on it.

A patient with no named hematologist; a laboratory feed (a system sender, not a clinician)
posts through the lab API, on day 53 after the infusion, a count collected on day 45 (8 days
late) after aplasia. It must be a high alert on the center's worklist, e-mailed to the center's
clinicians naming the delay, and escalated 24 hours later when nobody acknowledged it.
The clock is fixed (time-machine), the API, outbox and mail backend are the real ones.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta

import pytest
import time_machine
from django.contrib.auth.models import Permission

from monitoring import notifications
from monitoring.escalation import alerts_escalate
from monitoring.models import ESCALATION_OTHERS, HIGH, Alert, AlertEscalation, Notification
from monitoring.worklist import worklist
from tests.conftest import token_client
from tests.factories import BERLIN, InfusionFactory, PatientFactory, UserFactory

INFUSED = date(2025, 3, 1)
ARRIVES = datetime.combine(INFUSED + timedelta(days=53), time(10), tzinfo=BERLIN)


@pytest.fixture(autouse=True)
def sixty_days(settings):
    settings.ALERT_STALE_AFTER_DAYS = 60  # the default (the suite's conftest lifts it)


@pytest.fixture
def colleague(center, roles):
    user = UserFactory(username="colleague", center=center)
    user.groups.add(roles["clinician"])
    return user


@pytest.fixture
def lab_feed(center):
    """The laboratory's interface: may post results for the center, is nobody's clinician."""
    user = UserFactory(username="lab-feed", center=center)
    user.user_permissions.add(*Permission.objects.filter(codename__in=["add_labresult"]))
    return token_client(user)


def post(feed, day: int, value: dict):
    collected = datetime.combine(INFUSED + timedelta(days=day), time(8), tzinfo=BERLIN)
    sample = {"study_id": "CT-PROBE", "collected_at": collected.isoformat()}
    values = [{"analyte": "pb_bcell_abs", "unit": "cells/uL", **value}]
    return feed.post("/api/v1/lab-results/", {"samples": [{**sample, "values": values}]}, "json")


def test_a_late_result_for_a_patient_without_hematologist_reaches_the_center_and_escalates(
    center, clinician, colleague, lab_feed, client, mailoutbox, django_capture_on_commit_callbacks
):
    patient = PatientFactory(center=center, study_id="CT-PROBE")  # no responsible clinician
    InfusionFactory(patient=patient, infusion_date=INFUSED)
    with time_machine.travel(ARRIVES - timedelta(days=46), tick=False):  # day 7, 10:00
        aplasia = post(lab_feed, 7, {"qualifier": "undetectable"})
        assert aplasia.status_code == 201, aplasia.json()

    with (
        time_machine.travel(ARRIVES, tick=False),
        django_capture_on_commit_callbacks(execute=False),
    ):
        answer = post(lab_feed, 45, {"value": "20"})
    assert answer.status_code == 201, answer.json()
    assert answer.json()["alerts"]["news"] >= 1

    alert = Alert.objects.get(patient=patient, rule="early_regeneration")
    assert (alert.severity, alert.historical, alert.late_days) == (HIGH, False, 8)

    # On the center's worklist, saying that nobody is responsible and how late the result came.
    with time_machine.travel(ARRIVES + timedelta(hours=1), tick=False):
        assert alert in worklist(colleague).high_alerts
        client.force_login(colleague)
        page = client.get("/").content.decode()
    assert "CT-PROBE" in page and "no responsible clinician" in page
    assert "collected 8 days before it arrived" in page

    # E-mailed to the center's clinicians (the feed is nobody's clinician), naming the delay.
    first = Notification.objects.filter(alert=alert, escalation_step=0)
    assert sorted(first.values_list("recipient__username", flat=True)) == [
        "clinician",
        "colleague",
    ]
    notifications.notifications_send_pending()
    assert sorted(m.to[0] for m in mailoutbox) == ["clinician@example.org", "colleague@example.org"]
    assert all("The result was collected 8 days before it arrived." in m.body for m in mailoutbox)
    assert all("no responsible clinician" in m.body for m in mailoutbox)

    # Nobody acknowledged it: 24 hours later it is sent again.
    raised = alert.raised_at
    assert alerts_escalate(now=raised + timedelta(hours=24))["steps"] == 0
    assert alerts_escalate(now=raised + timedelta(hours=24, seconds=1))["steps"] == 1
    assert AlertEscalation.objects.get(alert=alert).step == ESCALATION_OTHERS
    mailoutbox.clear()
    notifications.notifications_send_pending()
    assert len(mailoutbox) == 2
    assert all("Sent again: nobody has acknowledged" in m.body for m in mailoutbox)
