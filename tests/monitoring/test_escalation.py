"""A high alert nobody acknowledges is sent again (CLINICAL.md section 4; monitoring.escalation).

After [24 h] to the center's other clinicians, after [48 h] to its leads; each step recorded on
the alert and shown; acknowledging stops it; nothing sent twice; hours per center. The clock is
passed in (`now=`) or fixed with time-machine; the last test runs the real worker and beat.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
import time_machine
from django.contrib.auth.models import Group
from django.utils import timezone

from monitoring import notifications
from monitoring.escalation import alert_escalation_take, alerts_escalate
from monitoring.models import (
    CENTER_LEADS_GROUP,
    ESCALATION_LEADS,
    ESCALATION_OTHERS,
    SENT,
    Alert,
    AlertEscalation,
    CenterAlerting,
    Notification,
)
from monitoring.services import alert_acknowledge
from patients.services import LabValue, lab_results_record
from patients.units import CELLS_PER_UL, PB_BCELL_ABS, UNDETECTABLE
from tests.factories import BERLIN, InfusionFactory, PatientFactory, UserFactory

RAISED = datetime(2025, 3, 31, 9, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)
SECOND = timedelta(seconds=1)


@pytest.fixture
def colleague(center, roles):
    user = UserFactory(username="colleague", center=center)
    user.groups.add(roles["clinician"])
    return user


@pytest.fixture
def lead(center, roles):
    user = UserFactory(username="lead", center=center)
    # Created by the migration; a transactional test before this one may have flushed it.
    user.groups.add(Group.objects.get_or_create(name=CENTER_LEADS_GROUP)[0])
    return user


def regenerate(patient, *, at: datetime) -> Alert:
    """Aplasia on day 7, B cells back on day 30, entered at `at`: a high alert raised then."""
    with time_machine.travel(at, tick=False):
        for day, value in ((7, None), (30, Decimal("9"))):
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


@pytest.fixture
def alert(center, clinician, colleague, lead):
    patient = PatientFactory(center=center, study_id="CT-ESC")
    patient.hematologists.add(clinician)
    InfusionFactory(patient=patient, infusion_date=date(2025, 3, 1))
    alert = regenerate(patient, at=RAISED)
    assert alert.raised_at == RAISED
    assert list(
        Notification.objects.filter(alert=alert).values_list(
            "recipient__username", "escalation_step"
        )
    ) == [("clinician", 0)]
    return alert


def sent_to(step: int) -> list[str]:
    return sorted(
        Notification.objects.filter(escalation_step=step).values_list(
            "recipient__username", flat=True
        )
    )


def test_24_hours_is_not_yet_late_and_24_hours_and_a_second_is(alert):
    assert alerts_escalate(now=RAISED + 24 * HOUR) == {"steps": 0, "notifications": 0}
    assert sent_to(ESCALATION_OTHERS) == []

    assert alerts_escalate(now=RAISED + 24 * HOUR + SECOND) == {"steps": 1, "notifications": 1}
    assert sent_to(ESCALATION_OTHERS) == ["colleague"]  # not the responsible clinician again
    (step,) = AlertEscalation.objects.filter(alert=alert)
    assert (step.step, step.recipients, step.created_at) == (
        ESCALATION_OTHERS,
        1,
        RAISED + 24 * HOUR + SECOND,
    )
    # The next run, and one at the same moment, take nothing again.
    assert alerts_escalate(now=RAISED + 30 * HOUR)["steps"] == 0
    assert alert_escalation_take(alert=alert, step=ESCALATION_OTHERS, now=RAISED) is None
    assert Notification.objects.filter(escalation_step=ESCALATION_OTHERS).count() == 1


def test_48_hours_and_a_second_reach_the_centers_leads(alert):
    alerts_escalate(now=RAISED + 25 * HOUR)
    assert alerts_escalate(now=RAISED + 48 * HOUR)["steps"] == 0
    assert alerts_escalate(now=RAISED + 48 * HOUR + SECOND)["steps"] == 1
    assert sent_to(ESCALATION_LEADS) == ["lead"]
    assert list(AlertEscalation.objects.values_list("step", flat=True)) == [1, 2]
    assert alerts_escalate(now=RAISED + 100 * HOUR)["steps"] == 0  # nothing after the leads


def test_a_run_missed_for_two_days_takes_both_steps_once(alert):
    assert alerts_escalate(now=RAISED + 72 * HOUR) == {"steps": 2, "notifications": 2}
    assert (sent_to(1), sent_to(2)) == (["colleague"], ["lead"])


def test_acknowledging_stops_the_escalation_and_its_unsent_messages(alert, clinician, mailoutbox):
    alerts_escalate(now=RAISED + 25 * HOUR)
    pending = Notification.objects.get(escalation_step=ESCALATION_OTHERS)
    alert_acknowledge(alert=alert, user=clinician)

    assert notifications.notification_send(pending.pk) == "failed"
    pending.refresh_from_db()
    assert (pending.attempts, pending.last_error) == (0, "not sent: alert acknowledged")
    assert mailoutbox == []
    assert alerts_escalate(now=RAISED + 72 * HOUR)["steps"] == 0
    assert sent_to(ESCALATION_LEADS) == []


def test_the_hours_are_a_per_center_setting(alert, center):
    CenterAlerting.objects.create(center=center, escalate_after_hours=2, leads_after_hours=4)
    assert alerts_escalate(now=RAISED + 2 * HOUR)["steps"] == 0
    assert alerts_escalate(now=RAISED + 2 * HOUR + SECOND)["steps"] == 1
    assert alerts_escalate(now=RAISED + 4 * HOUR + SECOND)["steps"] == 1


def test_the_steps_are_on_the_alert_page_and_in_the_message(alert, clinician_client, mailoutbox):
    alerts_escalate(now=RAISED + 25 * HOUR)
    page = clinician_client.get(alert.get_absolute_url()).content.decode()
    assert "Escalated to the center&#x27;s other clinicians" in page
    assert "sent to 1 of the center" in page
    notifications.notifications_send_pending()
    escalated = next(m for m in mailoutbox if m.to == ["colleague@example.org"])
    assert "Sent again: nobody has acknowledged this alert" in escalated.body


def test_history_and_lower_severities_are_not_escalated(alert):
    Alert.objects.filter(pk=alert.pk).update(historical=True)
    assert alerts_escalate(now=RAISED + 72 * HOUR)["steps"] == 0
    Alert.objects.filter(pk=alert.pk).update(historical=False, severity="warning")
    assert alerts_escalate(now=RAISED + 72 * HOUR)["steps"] == 0


@pytest.mark.celery_worker
def test_the_real_worker_and_beat_escalate_once(
    celery_worker_factory, wait_for, center, clinician, colleague, lead
):
    """Beat runs `escalate_alerts` every second here; the worker is on the real clock, so the
    alert is raised on the real clock and then dated 25 hours back."""
    from tests.monitoring.test_worker_integration import readable_text

    patient = PatientFactory(center=center, study_id="CT-ESC-W")
    patient.hematologists.add(clinician)
    InfusionFactory(patient=patient, infusion_date=date(2025, 3, 1))
    alert = regenerate(patient, at=timezone.now())
    Alert.objects.filter(pk=alert.pk).update(raised_at=timezone.now() - 25 * HOUR)
    worker = celery_worker_factory(beat=True, extra_env={"ALERT_ESCALATION_SWEEP_SECONDS": "1"})
    wait_for(
        lambda: Notification.objects.filter(
            alert=alert, escalation_step=ESCALATION_OTHERS, status=SENT
        ).exists(),
        timeout=30,
        what="beat and the worker to escalate the alert and send it",
    )
    wait_for(lambda: len(worker.mails()) >= 2, timeout=20, what="both e-mails")
    import time as clock

    clock.sleep(3)  # three more beat runs: nothing is taken or sent again
    assert AlertEscalation.objects.filter(alert=alert).count() == 1
    assert Notification.objects.filter(alert=alert).count() == 2  # the first, the escalation
    texts = [readable_text(m) for m in worker.mails()]
    assert len(texts) == 2
    assert sum("Sent again" in t for t in texts) == 1
    assert all("CT-ESC-W" in t for t in texts)
