"""Alert services: keep alerts consistent with the clinical data, and their lifecycle.

`alerts_sync` runs inside the transaction that changed a patient's data (the patient row is
locked by the caller), so a lab result and the alert it causes are committed together. It creates
at most one alert per (patient, infusion, rule), updates its evidence when the data change,
withdraws it with the reason when its condition no longer holds, and records the notifications to
send in the outbox, which is sent only after commit.
"""

from __future__ import annotations

import json
import logging
from datetime import date, timedelta

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction
from django.utils import timezone

from monitoring import notifications
from monitoring.engine import evaluate
from monitoring.findings import Finding
from monitoring.models import (
    ACKNOWLEDGED,
    ACTIVE_STATUSES,
    CLOSED,
    HIGH,
    OPEN,
    WITHDRAWN,
    Alert,
    AlertEvent,
)
from monitoring.params import RuleParams
from monitoring.selectors import patient_timeline, rule_params_for
from monitoring.timeline_json import evidence_to_dict
from patients.models import THERAPY_CATEGORY_CHOICES, Infusion, Patient, PreemptiveTherapy
from patients.validation import today_in

logger = logging.getLogger(__name__)


def _finding_fields(finding: Finding, params: RuleParams) -> dict:
    return {
        "severity": finding.severity,
        "title": finding.title,
        "day": finding.day,
        "evidence": [evidence_to_dict(e) for e in finding.evidence],
        "details": _json_safe(finding.details),
        "params": params.to_dict(),
        "rule_version": params.version,
        "infusion_number": finding.details.get("infusion_number", 0),
    }


def _json_safe(value):
    return json.loads(json.dumps(value, cls=DjangoJSONEncoder))


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


def _analyte_label(code: str | None) -> str:
    from patients.units import ANALYTES

    return ANALYTES[code].label if code in ANALYTES else str(code)


def _withdrawal_reason(alert: Alert, patient: Patient, timeline_result_ids: set[int]) -> str:
    if alert.infusion_id is None:
        return "The infusion this alert was about was deleted."
    missing = [e for e in alert.evidence if e.get("result_id") not in timeline_result_ids]
    if missing:
        return (
            "A result this alert rested on was deleted: "
            f"{_analyte_label(missing[0].get('analyte'))} of day {missing[0].get('day')}."
        )
    return (
        "Re-evaluated after a change to the patient's data (a lab corrected, an infusion "
        "date fixed, a response or event recorded): the rule's condition no longer holds."
    )


def historical_cutoff(as_of: date) -> date:
    """Findings dated before this day are history when first raised (ALERT_HISTORICAL_AGE_DAYS)."""
    return as_of - timedelta(days=settings.ALERT_HISTORICAL_AGE_DAYS)


def _is_history(finding: Finding, historical_before: date | None) -> bool:
    if historical_before is None:
        return False
    return date.fromisoformat(finding.details["date"]) < historical_before


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
    findings = {f.key: f for f in evaluate(timeline, params, as_of=as_of)}
    infusions = {i.pk: i for i in Infusion.objects.filter(patient=patient)}
    existing = {(a.infusion_id, a.rule): a for a in patient.alerts.all()}
    changed: list[Alert] = []
    recorded: list = []

    for key, finding in findings.items():
        fields = _finding_fields(finding, params)
        alert = existing.get(key)
        if alert is None:
            history = _is_history(finding, historical_before)
            alert = Alert(
                patient=patient,
                infusion=infusions[finding.infusion_id],
                rule=finding.rule,
                historical=history,
                **fields,
            )
            alert.save()
            _status_change(
                alert,
                OPEN,
                reason="Raised from historical data (not notified)."
                if history
                else "Raised by the rules engine.",
                is_new=True,
            )
            if notify and not history:
                recorded += notifications.notifications_record(alert=alert)
            changed.append(alert)
            continue
        basis_changed = any(getattr(alert, k) != v for k, v in fields.items())
        if alert.status == WITHDRAWN:
            for k, v in fields.items():
                setattr(alert, k, v)
            alert.withdrawn_at, alert.withdrawn_reason = None, ""
            history = _is_history(finding, historical_before)
            alert.historical = history
            _status_change(alert, OPEN, reason="The rule's condition holds again.")
            alert.save()
            if (
                notify and not history
            ):  # only those not yet told about this alert (never the same e-mail twice)
                recorded += notifications.notifications_record(alert=alert)
            changed.append(alert)
        elif basis_changed:
            # Same alert, newer evidence (e.g. a later count, changed parameters): keep its status.
            for k, v in fields.items():
                setattr(alert, k, v)
            alert.save()
            changed.append(alert)

    result_ids = {r.id for r in timeline.results}
    for key, alert in existing.items():
        if key in findings or alert.status not in ACTIVE_STATUSES:
            continue
        reason = _withdrawal_reason(alert, patient, result_ids)
        _status_change(alert, WITHDRAWN, reason=reason)
        alert.withdrawn_at, alert.withdrawn_reason = timezone.now(), reason
        alert.save()
        changed.append(alert)

    if recorded:
        notifications.send_after_commit()
    return changed


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
    return alert


def sweep(*, as_of: date | None = None) -> dict[str, int]:
    """Re-evaluate every patient: the time-based rules need it, and it is a safety net.

    Idempotent: with unchanged data and the same day it changes nothing. A finding the sweep
    raises from data older than the historical age (data that arrived without passing through the
    services, e.g. a bulk load) is history: recorded, not e-mailed.
    """
    counts = {"patients": 0, "changed": 0}
    for patient_id in Patient.objects.order_by("pk").values_list("pk", flat=True):
        with transaction.atomic():
            patient = (
                Patient.objects.select_for_update().select_related("center").get(pk=patient_id)
            )
            today = as_of or today_in(patient.center.tzinfo)
            counts["changed"] += len(
                alerts_sync(
                    patient=patient, as_of=today, historical_before=historical_cutoff(today)
                )
            )
            counts["patients"] += 1
    return counts


__all__ = ["alerts_sync", "alert_acknowledge", "alert_close", "sweep", "HIGH"]


def rule_parameters_publish(*, center, user, values: dict, note: str = ""):
    """Store a new version of a center's rule parameters and re-evaluate its patients.

    The previous version is retired, not changed, so every alert keeps naming the exact values
    it was evaluated with. The values are checked by RuleParams before anything is stored.
    """
    from monitoring.models import RuleParameterSet

    with transaction.atomic():
        previous = (
            RuleParameterSet.objects.select_for_update().filter(center=center).order_by("-version")
        )
        last = previous.first()
        RuleParameterSet.objects.filter(center=center, is_current=True).update(is_current=False)
        saved = RuleParameterSet(
            center=center,
            version=(last.version + 1) if last else 1,
            is_current=True,
            created_by=user,
            note=note,
            **values,
        )
        saved.full_clean()
        try:
            saved.to_rule_params()
        except ValueError as error:
            raise ValidationError(str(error)) from error
        saved.save()
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
