"""Escalation of high alerts nobody acknowledged (CLINICAL.md section 4).

A high alert still open (not acknowledged, closed or withdrawn; news, not history) is sent again
`escalate_after_hours` [24] after it was raised to the center's other clinicians, and
`leads_after_hours` [48] after to the center's leads (the "Center leads" group): hours per center
(`CenterAlerting`, else the settings). Each step is a row of its own (`AlertEscalation`), shown
on the alert page; its messages go through the same outbox as the first ones.

Once only: a step is claimed with a conditional UPDATE of the alert's `escalation_step` (as
healthchecks' sendalerts claims a check), in the same transaction as its row and its outbox rows,
so two runs at once never take one step twice; and the outbox sends nobody one step of one
alert twice. An alert acknowledged before its escalation was sent is not sent (`notification_send`).
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.db import transaction
from django.utils import timezone

from monitoring import notifications, recipients, texts
from monitoring.models import (
    ESCALATION_LEADS,
    ESCALATION_OTHERS,
    HIGH,
    OPEN,
    Alert,
    AlertEscalation,
)
from monitoring.selectors import alerting_policies

logger = logging.getLogger(__name__)


def _due_step(alert: Alert, policy, now: datetime) -> int:
    """The highest step due for this alert now (0: none)."""
    age = now - alert.raised_at  # "not acknowledged within 24 hours": 24 h + 1 s escalates
    if age > timedelta(hours=policy.leads_after_hours):
        return ESCALATION_LEADS
    if age > timedelta(hours=policy.escalate_after_hours):
        return ESCALATION_OTHERS
    return 0


def alerts_escalate(*, now: datetime | None = None) -> dict[str, int]:
    """Take every escalation step that is due (beat runs this every few minutes). Returns
    {"steps": steps taken, "notifications": outbox rows recorded}."""
    now = now or timezone.now()
    candidates = list(
        Alert.objects.filter(
            severity=HIGH, status=OPEN, historical=False, escalation_step__lt=ESCALATION_LEADS
        )
        .select_related("patient")
        .only("pk", "raised_at", "escalation_step", "patient__center_id", "patient_id")
    )
    policies = alerting_policies({a.patient.center_id for a in candidates})
    counts = {"steps": 0, "notifications": 0}
    for alert in candidates:
        due = _due_step(alert, policies[alert.patient.center_id], now)
        for step in range(alert.escalation_step + 1, due + 1):
            recorded = alert_escalation_take(alert=alert, step=step, now=now)
            if recorded is None:
                break  # acknowledged meanwhile, or another run took the step
            counts["steps"] += 1
            counts["notifications"] += recorded
    return counts


def alert_escalation_take(*, alert: Alert, step: int, now: datetime) -> int | None:
    """Take one step for one alert if it is still open and at the step before: the recorded
    notifications' count, or None when the claim failed."""
    with transaction.atomic():
        claimed = Alert.objects.filter(pk=alert.pk, status=OPEN, escalation_step=step - 1).update(
            escalation_step=step
        )
        if claimed != 1:
            return None
        center_id = alert.patient.center_id
        if step == ESCALATION_OTHERS:
            # Other than the patient's responsible ones (told first); a patient without one had
            # its first message go to every clinician of the center: they are sent it again.
            responsible = set(alert.patient.hematologists.values_list("pk", flat=True))
            users = [
                u
                for u in recipients.center_clinicians({center_id}).get(center_id, [])
                if u not in responsible
            ]
            note, nobody = texts.ESCALATED_OTHERS, texts.ESCALATED_OTHERS_NOBODY
        else:
            users = recipients.center_leads({center_id}).get(center_id, [])
            note, nobody = texts.ESCALATED_LEADS, texts.ESCALATED_LEADS_NOBODY
        rows = recipients.outbox_record([(alert, u) for u in users], step=step)
        # Stored in English; the alert page shows it in the reader's language.
        note = note % {"count": len(rows)}
        if not users:
            note = nobody
            logger.error("Alert %s: escalation step %s reached nobody", alert.pk, step)
        AlertEscalation.objects.create(
            alert_id=alert.pk, step=step, created_at=now, recipients=len(rows), note=note
        )
        if rows:
            notifications.send_after_commit()
    alert.escalation_step = step
    return len(rows)
