"""Alert services: keep alerts consistent with the clinical data, and their lifecycle.

`alerts_sync` runs inside the transaction that changed a patient's data (the patient row is
locked by the caller), so a lab result and the alert it causes are committed together. It creates
at most one alert per (patient, infusion, rule), updates its evidence when the data change,
withdraws it with the reason when its condition no longer holds, and records the notifications to
send in the outbox, which is sent only after commit.
"""

from __future__ import annotations

import logging
from datetime import date, timedelta

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from monitoring import notifications
from monitoring.alert_diff import RAISED, alerts_diff
from monitoring.badge import badge_versions_bump
from monitoring.engine import evaluate
from monitoring.models import (
    ACKNOWLEDGED,
    ACTIVE_STATUSES,
    CLOSED,
    HIGH,
    OPEN,
    Alert,
    AlertEvent,
)
from monitoring.selectors import patient_timeline, rule_params_for
from patients.models import THERAPY_CATEGORY_CHOICES, Patient, PreemptiveTherapy
from patients.validation import today_in

logger = logging.getLogger(__name__)


def _status_change(
    alert: Alert, new_status: str, *, reason: str = "", user=None, is_new: bool = False
) -> None:
    AlertEvent.objects.create(
        alert=alert,
        old_status="" if is_new else alert.status,
        new_status=new_status,
        reason=reason[:500],
        user=user if user and user.is_authenticated else None,
    )
    alert.status = new_status


def historical_cutoff(as_of: date) -> date:
    """Findings dated before this day are history when first raised (ALERT_HISTORICAL_AGE_DAYS)."""
    return as_of - timedelta(days=settings.ALERT_HISTORICAL_AGE_DAYS)


def alerts_sync(
    *,
    patient: Patient,
    as_of: date | None = None,
    notify: bool = True,
    historical_before: date | None = None,
) -> list[Alert]:
    """Make the patient's alerts match what the rules find now. Returns the changed alerts.

    The caller holds the patient's row lock (every service does), so two concurrent saves for
    one patient cannot both create the alert; the unique constraint backs this up.

    `historical_before`: a finding dated before this day that raises (or re-opens) an alert is
    history, not news (imports and sweeps pass `historical_cutoff(today)`; a clinician's own
    entry passes nothing): the alert is marked historical and nobody is e-mailed.
    """
    patient = Patient.objects.select_related("center").get(pk=patient.pk)
    as_of = as_of or today_in(patient.center.tzinfo)
    params = rule_params_for(patient.center)
    timeline = patient_timeline(patient)
    changes = alerts_diff(
        patient_id=patient.pk,
        findings=evaluate(timeline, params, as_of=as_of),
        existing=list(patient.alerts.all()),
        params=params,
        result_ids={r.id for r in timeline.results},
        historical_before=historical_before,
        notify=notify,
        now=timezone.now(),
    )
    recorded: list = []
    for change in changes:
        alert = change.alert
        if change.kind == RAISED:
            alert.patient = patient
            alert.save()
        if change.status_changed:
            AlertEvent.objects.create(
                alert=alert,
                old_status=change.old_status,
                new_status=alert.status,
                reason=change.reason[:500],
            )
        if change.kind != RAISED:
            alert.save()
        if change.notify:
            recorded += notifications.notifications_record(alert=alert)
    if recorded:
        notifications.send_after_commit()
    if changes:
        badge_versions_bump([patient.center_id])
    return [change.alert for change in changes]


def alert_acknowledge(*, alert: Alert, user: AbstractBaseUser) -> Alert:
    with transaction.atomic():
        alert = Alert.objects.select_for_update().get(pk=alert.pk)
        if alert.status != OPEN:
            raise ValidationError(
                f"Only an open alert can be acknowledged; this one is "
                f"{alert.get_status_display().lower()}."
            )
        _status_change(alert, ACKNOWLEDGED, user=user)
        alert.acknowledged_by, alert.acknowledged_at = user, timezone.now()
        alert.save()
        badge_versions_bump([alert.patient.center_id])
    return alert


def alert_close(
    *,
    alert: Alert,
    user: AbstractBaseUser,
    outcome: str,
    reason: str = "",
    therapy: PreemptiveTherapy | None = None,
    new_therapy: PreemptiveTherapy | None = None,
) -> Alert:
    """Close an alert with its outcome, kept so that each rule's usefulness can be measured.

    "Anti-leukemic pre-emption started" links the therapy record: an existing one of the patient,
    or `new_therapy`, which is validated and saved in the same transaction.
    """
    from patients.services import clinical_record_save

    errors: dict[str, list[str]] = {}
    if outcome == "not_relevant" and not reason.strip():
        errors["reason"] = ["Say why the alert is not relevant."]
    if outcome in ("anti_leukemic", "immunomodulatory") and therapy is None and new_therapy is None:
        errors["therapy"] = ["Link the therapy that was started, or record it here."]
    for record in (therapy, new_therapy):
        if record is not None and record.pk and record.patient_id != alert.patient_id:
            errors["therapy"] = ["That therapy belongs to another patient."]
        if (
            record is not None
            and outcome in ("anti_leukemic", "immunomodulatory")
            and record.category != outcome
        ):
            errors.setdefault("therapy", []).append(
                f"That therapy is {record.get_category_display().lower()}, not "
                f"{dict(THERAPY_CATEGORY_CHOICES)[outcome].lower()}."
            )
    if errors:
        raise ValidationError(errors)
    with transaction.atomic():
        alert = Alert.objects.select_for_update().get(pk=alert.pk)
        if alert.status not in ACTIVE_STATUSES:
            raise ValidationError(f"This alert is already {alert.get_status_display().lower()}.")
        if new_therapy is not None:
            new_therapy.patient_id = alert.patient_id
            therapy = clinical_record_save(instance=new_therapy, user=user)
            alert.refresh_from_db()
        _status_change(
            alert,
            CLOSED,
            reason=reason or dict(Alert._meta.get_field("outcome").choices)[outcome],
            user=user,
        )
        alert.outcome, alert.outcome_reason, alert.therapy = outcome, reason.strip(), therapy
        alert.closed_by, alert.closed_at = user, timezone.now()
        if alert.acknowledged_at is None:
            alert.acknowledged_by, alert.acknowledged_at = user, alert.closed_at
        alert.save()
        badge_versions_bump([alert.patient.center_id])
    return alert


def sweep(*, as_of: date | None = None) -> dict[str, int]:
    """Re-evaluate every patient (the nightly safety run): `monitoring.sweep.sweep_all`.

    Idempotent: with unchanged data and the same day it changes nothing. A finding the sweep
    raises from data older than the historical age (data that arrived without passing through the
    services, e.g. a bulk load) is history: recorded, not e-mailed.
    """
    from monitoring.sweep import sweep_all

    return sweep_all(as_of=as_of)


__all__ = ["alerts_sync", "alert_acknowledge", "alert_close", "sweep", "HIGH"]


def rule_parameters_publish(*, center, user, values: dict, note: str = ""):
    """Store a new version of a center's rule parameters and re-evaluate its patients.

    The previous version is retired, not changed, so every alert keeps naming the exact values
    it was evaluated with. The values are checked by RuleParams before anything is stored.
    """
    from monitoring.models import RuleParameterSet
    from patients.versioned import settings_publish

    with transaction.atomic():
        saved = settings_publish(
            RuleParameterSet, center=center, user=user, values=values, note=note
        )
        patients = Patient.objects.all() if center is None else center.patients.all()
        for patient in patients.order_by("pk"):
            Patient.objects.select_for_update().get(pk=patient.pk)
            alerts_sync(patient=patient)
    return saved


def profile_for(*, user):
    from patients.models import ClinicianProfile

    profile, _ = ClinicianProfile.objects.get_or_create(user=user)
    return profile


def notification_preferences_update(*, user, email_low_severity: bool):
    profile = profile_for(user=user)
    profile.email_low_severity = email_low_severity
    profile.save(update_fields=["email_low_severity"])
    return profile
