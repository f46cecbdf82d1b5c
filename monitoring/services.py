"""Alert services: keep alerts consistent with the clinical data, and their lifecycle.

`alerts_sync` runs inside the transaction that changed a patient's data (the patient row is
locked by the caller), so a lab result and the alert it causes are committed together. It creates
at most one alert per (patient, infusion, rule), updates its evidence when the data change,
withdraws it with the reason when its condition no longer holds, and records the notifications to
send in the outbox, which is sent only after commit.
"""

from __future__ import annotations

import logging
from datetime import date

from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext

from monitoring import texts
from monitoring.badge import badge_versions_bump
from monitoring.models import (
    ACKNOWLEDGED,
    ACTIVE_STATUSES,
    CLOSED,
    HIGH,
    OPEN,
    Alert,
    AlertEvent,
)
from monitoring.sweep import alerts_sync_many
from patients.models import THERAPY_CATEGORY_CHOICES, Patient, PreemptiveTherapy

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


def alerts_sync(
    *,
    patient: Patient,
    as_of: date | None = None,
    notify: bool = True,
    history: bool = False,
) -> list[Alert]:
    """Make the patient's alerts match what the rules find now. Returns the changed alerts.

    The bulk writer with one patient (`monitoring.sweep.alerts_sync_many`): one set of decisions
    and one recipient policy for a clinician's save, an import and the sweep. The caller holds
    the patient's row lock (every service does), so two concurrent saves for one patient cannot
    both create the alert; the unique constraint backs this up. `history`: the data arrived in
    an import declared as history (see `monitoring.news` for what else is history).
    """
    with transaction.atomic():
        changes = alerts_sync_many(
            patient_ids=[patient.pk], as_of=as_of, notify=notify, history=history
        )
    return [change.alert for change in changes]


def responsible_assign(*, patients: list[Patient], sender) -> int:
    """Every patient has a responsible clinician (CLINICAL.md section 4): patients an import
    just created get its sender, when the sender is a clinician (the Clinicians role), else (a
    laboratory feed or another system) their center's intake team named in its alerting
    settings. Patients that already have one are left alone. Returns the links made.

    Written in bulk (an import may create thousands of patients): the links are not in the
    patients' change history, the import's audit row names the sender."""
    from monitoring.models import CLINICIANS_GROUP, CenterAlerting

    patients = [p for p in patients if p.pk]
    if not patients:
        return 0
    through = Patient.hematologists.through
    have = set(
        through.objects.filter(patient_id__in=[p.pk for p in patients]).values_list(
            "patient_id", flat=True
        )
    )
    patients = [p for p in patients if p.pk not in have]
    if sender is not None and sender.groups.filter(name=CLINICIANS_GROUP).exists():
        team = {p.center_id: [sender.pk] for p in patients}
    else:
        team = {}
        for center_id, user_id in CenterAlerting.intake_team.through.objects.filter(
            centeralerting__center_id__in={p.center_id for p in patients},
            user__is_active=True,
        ).values_list("centeralerting__center_id", "user_id"):
            team.setdefault(center_id, []).append(user_id)
    links = [
        through(patient_id=p.pk, user_id=user_id)
        for p in patients
        for user_id in team.get(p.center_id, [])
    ]
    through.objects.bulk_create(links, ignore_conflicts=True)
    return len(links)


def alert_acknowledge(*, alert: Alert, user: AbstractBaseUser) -> Alert:
    with transaction.atomic():
        alert = Alert.objects.select_for_update().get(pk=alert.pk)
        if alert.status != OPEN:
            raise ValidationError(
                gettext("Only an open alert can be acknowledged; this one is %(status)s.")
                % {"status": str(alert.get_status_display()).lower()}
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
        errors["reason"] = [gettext("Say why the alert is not relevant.")]
    if outcome in ("anti_leukemic", "immunomodulatory") and therapy is None and new_therapy is None:
        errors["therapy"] = [gettext("Link the therapy that was started, or record it here.")]
    for record in (therapy, new_therapy):
        if record is not None and record.pk and record.patient_id != alert.patient_id:
            errors["therapy"] = [gettext("That therapy belongs to another patient.")]
        if (
            record is not None
            and outcome in ("anti_leukemic", "immunomodulatory")
            and record.category != outcome
        ):
            errors.setdefault("therapy", []).append(
                gettext("That therapy is %(category)s, not %(expected)s.")
                % {
                    "category": str(record.get_category_display()).lower(),
                    "expected": str(dict(THERAPY_CATEGORY_CHOICES)[outcome]).lower(),
                }
            )
    if errors:
        raise ValidationError(errors)
    with transaction.atomic():
        alert = Alert.objects.select_for_update().get(pk=alert.pk)
        if alert.status not in ACTIVE_STATUSES:
            raise ValidationError(
                gettext("This alert is already %(status)s.")
                % {"status": str(alert.get_status_display()).lower()}
            )
        if new_therapy is not None:
            new_therapy.patient_id = alert.patient_id
            therapy = clinical_record_save(instance=new_therapy, user=user)
            alert.refresh_from_db()
        _status_change(
            alert,
            CLOSED,
            reason=reason or texts.english(dict(Alert._meta.get_field("outcome").choices)[outcome]),
            user=user,
        )
        alert.outcome, alert.outcome_reason, alert.therapy = outcome, reason.strip(), therapy
        alert.closed_by, alert.closed_at = user, timezone.now()
        if alert.acknowledged_at is None:
            alert.acknowledged_by, alert.acknowledged_at = user, alert.closed_at
        alert.save()
        badge_versions_bump([alert.patient.center_id])
    return alert


__all__ = ["alerts_sync", "alert_acknowledge", "alert_close", "HIGH"]


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


def notification_preferences_update(*, user, email_low_severity: bool, language: str | None = None):
    """Save a user's preferences; ``language`` "" is the browser's, None leaves it as it is."""
    from django.conf import settings

    profile = profile_for(user=user)
    profile.email_low_severity = email_low_severity
    fields = ["email_low_severity"]
    if language is not None:
        if language and language not in dict(settings.LANGUAGES):
            raise ValidationError({"language": [gettext("Choose one of the languages offered.")]})
        profile.language = language
        fields.append("language")
    profile.save(update_fields=fields)
    return profile
