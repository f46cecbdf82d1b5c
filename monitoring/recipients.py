"""Who is told about an alert: the one recipient policy, and the outbox rows it records.

The rows are written in the same transaction as their alerts (`monitoring.sweep`, the escalation
in `monitoring.escalation`); `monitoring.notifications` sends them after commit. Nobody is told
the same message twice.
"""

from __future__ import annotations

from monitoring.models import (
    CENTER_LEADS_GROUP,
    CLINICIANS_GROUP,
    FAILED,
    HIGH,
    Alert,
    CenterAlerting,
    Notification,
)


def notifications_record_many(*, alerts: list[Alert]) -> list[Notification]:
    """The one recipient policy, for any number of alerts (of many patients) in a constant
    number of queries (CLINICAL.md section 4):

    - history is never e-mailed;
    - the patient's active responsible hematologists; high alerts always, lower severities
      only to those who have not opted out;
    - a high alert whose patient has no active responsible hematologist goes to the center's
      clinicians who receive e-mail (`center_clinicians`);
    - nobody is told twice about one alert (a re-opened alert, an escalation).
    """
    from patients.models import ClinicianProfile, Patient

    alerts = [a for a in alerts if not a.historical]
    if not alerts:
        return []
    doctors: dict[int, list[int]] = {}
    for patient_id, user_id in Patient.hematologists.through.objects.filter(
        patient_id__in={a.patient_id for a in alerts}, user__is_active=True
    ).values_list("patient_id", "user_id"):
        doctors.setdefault(patient_id, []).append(user_id)
    orphans = {a.patient_id for a in alerts if a.severity == HIGH and not doctors.get(a.patient_id)}
    centers = dict(Patient.objects.filter(pk__in=orphans).values_list("pk", "center_id"))
    team = center_clinicians(set(centers.values()))
    low_severity = dict(
        ClinicianProfile.objects.filter(
            user_id__in={u for users in doctors.values() for u in users}
        ).values_list("user_id", "email_low_severity")
    )
    wanted = []
    for alert in alerts:
        if alert.patient_id in orphans:
            users = team.get(centers[alert.patient_id], [])
        else:
            users = [
                u
                for u in doctors.get(alert.patient_id, [])
                if alert.severity == HIGH or low_severity.get(u, True)
            ]
        wanted += [(alert, u) for u in users]
    rows = outbox_record(wanted)
    return rows + webhooks_record([a for a in alerts if a.severity == HIGH])


def webhooks_record(alerts: list[Alert], *, step: int = 0) -> list[Notification]:
    """A webhook row per high alert of a center that has a webhook, unless one was recorded."""
    from patients.models import Patient

    if not alerts:
        return []
    hooked = set(CenterAlerting.objects.exclude(webhook_url="").values_list("center_id", flat=True))
    if not hooked:
        return []
    centers = dict(
        Patient.objects.filter(pk__in={a.patient_id for a in alerts}).values_list("pk", "center_id")
    )
    alerts = [a for a in alerts if centers[a.patient_id] in hooked]
    done = set(
        Notification.objects.filter(alert__in=[a.pk for a in alerts], channel="webhook")
        .filter(escalation_step=step)
        .exclude(status=FAILED)
        .values_list("alert_id", flat=True)
    )
    return Notification.objects.bulk_create(
        Notification(alert=a, recipient=None, channel="webhook", escalation_step=step)
        for a in alerts
        if a.pk not in done
    )


def outbox_record(wanted: list[tuple[Alert, int]], *, step: int = 0) -> list[Notification]:
    """Outbox rows for (alert, user id) pairs, except to someone already sent (or about to be
    sent) that alert (`step` 0: the first message, also when it re-opens) or that escalation
    step of it: never the same message twice. One query to read, one to write."""
    sent = Notification.objects.filter(
        alert__in=[a.pk for a, _ in wanted], recipient__isnull=False
    ).exclude(status=FAILED)
    if step:
        sent = sent.filter(escalation_step=step)
    told = set(sent.values_list("alert_id", "recipient_id"))
    rows = []
    for alert, user_id in wanted:
        if (alert.pk, user_id) in told:
            continue
        told.add((alert.pk, user_id))
        rows.append(
            Notification(alert=alert, recipient_id=user_id, channel="email", escalation_step=step)
        )
    return Notification.objects.bulk_create(rows)


def center_clinicians(center_ids: set[int]) -> dict[int, list[int]]:
    """Each center's active clinicians (the Clinicians role) who have an e-mail address."""
    return _center_members(center_ids, CLINICIANS_GROUP)


def center_leads(center_ids: set[int]) -> dict[int, list[int]]:
    """Each center's active leads (the "Center leads" group) who have an e-mail address."""
    return _center_members(center_ids, CENTER_LEADS_GROUP)


def centers_without_recipients() -> list:
    """Centers whose high alerts would reach nobody: no active clinician with an e-mail
    address (a patient without a responsible clinician, and every escalation, needs one).
    Shown to the admin (CenterAlerting's list) and by `manage.py check --database default`."""
    from patients.models import Center

    centers = list(Center.objects.order_by("code"))
    reached = center_clinicians({c.pk for c in centers})
    return [c for c in centers if not reached.get(c.pk)]


def _center_members(center_ids: set[int], group: str) -> dict[int, list[int]]:
    from django.contrib.auth import get_user_model

    members: dict[int, list[int]] = {}
    if not center_ids:
        return members
    for center_id, user_id in (
        get_user_model()
        .objects.filter(is_active=True, profile__center_id__in=center_ids, groups__name=group)
        .exclude(email="")
        .order_by("pk")
        .values_list("profile__center_id", "pk")
        .distinct()
    ):
        members.setdefault(center_id, []).append(user_id)
    return members
