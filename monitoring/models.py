"""Alerts, their status changes, the notification outbox and each center's rule parameters.

Alerts are data kept consistent with the clinical data (`monitoring.services.alerts_sync`): at
most one per (patient, infusion, rule); an alert whose condition no longer holds is withdrawn with
the reason, never deleted. Every status change is a row of its own (AlertEvent), as is every
notification to send (Notification, the outbox), so nothing is lost when a worker or Redis is down.
"""

from __future__ import annotations

from decimal import Decimal

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q
from django.urls import reverse

from monitoring.params import RuleParams
from patients.models import Center, Infusion, Patient, PreemptiveTherapy
from patients.versioned import CenterSettingsVersion
from patients.vocabulary import Outcome

HIGH, WARNING, INFO, REMINDER = "high", "warning", "info", "reminder"
SEVERITY_CHOICES = [(HIGH, "High"), (WARNING, "Warning"), (INFO, "Info"), (REMINDER, "Reminder")]
SEVERITY_RANK = {HIGH: 0, WARNING: 1, REMINDER: 2, INFO: 3}

OPEN, ACKNOWLEDGED, CLOSED, WITHDRAWN = "open", "acknowledged", "closed", "withdrawn"
STATUS_CHOICES = [
    (OPEN, "Open"),
    (ACKNOWLEDGED, "Acknowledged"),
    (CLOSED, "Closed"),
    (WITHDRAWN, "Withdrawn"),
]
ACTIVE_STATUSES = (OPEN, ACKNOWLEDGED)

# Short names for flags in lists, where the severity colour alone would not say which rule.
RULE_SHORT_LABELS = {
    "early_regeneration": "Early B-cell regeneration",
    "late_recovery": "Late B-cell recovery",
    "aplasia_not_reached": "No aplasia by day 28",
    "bcell_count_due": "B-cell count due",
    "mrd_positive": "MRD positive",
    "car_copies_lost": "CAR copies lost",
}

OUTCOME_CHOICES = Outcome.choices


class RuleParameterSet(CenterSettingsVersion):
    """One version of a center's rule parameters (no center: the registry-wide default).

    Versions are immutable: a change in the admin stores a new version and retires the old one,
    so every alert can name exactly the values it was evaluated with.
    """

    center = models.ForeignKey(
        Center, on_delete=models.CASCADE, null=True, blank=True, related_name="rule_parameter_sets"
    )
    window_days = models.PositiveIntegerField(
        default=45, help_text="Early-regeneration window (days after infusion, inclusive)."
    )
    bcell_threshold = models.DecimalField(
        "B-cell threshold (cells/µL)",
        max_digits=10,
        decimal_places=3,
        default=Decimal(0),
        help_text="A count strictly above this is detectable. The study used 0.",
    )
    bcell_pct_threshold = models.DecimalField(
        "B-cell threshold (% of lymphocytes)",
        max_digits=6,
        decimal_places=3,
        null=True,
        blank=True,
        help_text="Optional: also detectable above this %, e.g. 1.",
    )
    require_confirmation = models.BooleanField(
        default=False, help_text="A second consecutive detectable sample must confirm."
    )
    aplasia_by_day = models.PositiveIntegerField(default=28)
    count_due_days = models.PositiveIntegerField(default=7)
    mrd_flow_threshold_pct = models.DecimalField(
        "MRD threshold, flow (%)", max_digits=8, decimal_places=5, default=Decimal("0.01")
    )
    mrd_ngs_threshold = models.DecimalField(
        "MRD threshold, NGS (fraction)", max_digits=10, decimal_places=8, default=Decimal("0.0001")
    )

    DEFAULT = RuleParams()

    class Meta:
        ordering = ["center__code", "-version"]
        constraints = [
            # nulls_distinct=False: the registry-wide set (no center) obeys the same rules.
            models.UniqueConstraint(
                fields=["center", "version"], name="rule_params_version", nulls_distinct=False
            ),
            models.UniqueConstraint(
                fields=["center"],
                condition=Q(is_current=True),
                name="one_current_rule_params_per_center",
                nulls_distinct=False,
            ),
        ]

    def __str__(self) -> str:
        return f"{self.label} ({'current' if self.is_current else 'retired'})"

    def clean(self) -> None:
        # The engine's own checks, shown beside the field they concern.
        try:
            self.to_rule_params()
        except ValueError as error:
            message = str(error)
            field = message.split(" ", 1)[0]
            known = {f.name for f in self._meta.fields}
            raise ValidationError({field if field in known else "__all__": message}) from None

    def check_value(self) -> None:
        try:
            self.to_rule_params()
        except ValueError as error:
            raise ValidationError(str(error)) from error

    def to_value(self) -> RuleParams:
        return self.to_rule_params()

    def to_rule_params(self) -> RuleParams:
        return RuleParams(
            version=self.label,
            window_days=self.window_days,
            bcell_threshold=self.bcell_threshold,
            bcell_pct_threshold=self.bcell_pct_threshold,
            require_confirmation=self.require_confirmation,
            aplasia_by_day=self.aplasia_by_day,
            count_due_days=self.count_due_days,
            mrd_flow_threshold_pct=self.mrd_flow_threshold_pct,
            mrd_ngs_threshold=self.mrd_ngs_threshold,
        )


class AlertQuerySet(models.QuerySet):
    def active_work(self) -> AlertQuerySet:
        """Alerts still to act on: open or acknowledged, and not imported history (a
        historical alert is recorded, not work to do). Every list, count and badge uses this."""
        return self.filter(status__in=ACTIVE_STATUSES, historical=False)


class Alert(models.Model):
    patient = models.ForeignKey(Patient, on_delete=models.CASCADE, related_name="alerts")
    # Kept when the infusion is deleted (the alert is then withdrawn, not lost).
    infusion = models.ForeignKey(
        Infusion, on_delete=models.SET_NULL, null=True, related_name="alerts"
    )
    infusion_number = models.PositiveSmallIntegerField()
    rule = models.CharField(max_length=40)
    severity = models.CharField(max_length=10, choices=SEVERITY_CHOICES)
    status = models.CharField(max_length=12, choices=STATUS_CHOICES, default=OPEN)
    title = models.CharField(max_length=200)
    day = models.IntegerField(help_text="Day after infusion of the finding.")
    # The basis, as evaluated: evidence rows, texts, rule parameters and their version.
    evidence = models.JSONField(default=list)
    details = models.JSONField(default=dict)
    params = models.JSONField(default=dict)
    rule_version = models.CharField(max_length=60)
    raised_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    acknowledged_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    closed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    closed_at = models.DateTimeField(null=True, blank=True)
    outcome = models.CharField(max_length=20, choices=OUTCOME_CHOICES, blank=True)
    outcome_reason = models.CharField(max_length=500, blank=True)
    therapy = models.ForeignKey(
        PreemptiveTherapy,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="prompting_alerts",
        help_text="The pre-emptive therapy started in response.",
    )
    withdrawn_at = models.DateTimeField(null=True, blank=True)
    withdrawn_reason = models.CharField(max_length=500, blank=True)
    # History is not news: a finding first raised from data older than ALERT_HISTORICAL_AGE_DAYS
    # (an import of past courses, the first sweep after a bulk load) is recorded and analysed like
    # any alert, but never e-mailed and kept out of the open worklist and the badge.
    historical = models.BooleanField(
        default=False,
        help_text="Raised from data older than the historical age (imported history): "
        "recorded and analysed, not e-mailed, not in the open worklist.",
    )

    objects = AlertQuerySet.as_manager()

    class Meta:
        ordering = ["-raised_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["patient", "infusion", "rule"], name="one_alert_per_patient_infusion_rule"
            ),
        ]
        indexes = [models.Index(fields=["status", "severity"])]

    def __str__(self) -> str:
        return f"{self.patient.study_id}: {self.title}"

    def get_absolute_url(self) -> str:
        return reverse("monitoring:alert", args=[self.pk])

    @property
    def short_label(self) -> str:
        return RULE_SHORT_LABELS.get(self.rule, self.title)

    @property
    def is_active(self) -> bool:
        return self.status in ACTIVE_STATUSES


class AlertEvent(models.Model):
    """One status change of an alert: the alert's history, and who did what."""

    alert = models.ForeignKey(Alert, on_delete=models.CASCADE, related_name="events")
    old_status = models.CharField(max_length=12, blank=True)
    new_status = models.CharField(max_length=12)
    reason = models.CharField(max_length=500, blank=True)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "pk"]

    def __str__(self) -> str:
        return f"{self.old_status or 'new'} → {self.new_status}"


PENDING, SENDING, SENT, FAILED = "pending", "sending", "sent", "failed"


class Notification(models.Model):
    """The outbox: one message to one recipient, recorded with the alert, sent after commit."""

    alert = models.ForeignKey(Alert, on_delete=models.CASCADE, related_name="notifications")
    recipient = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+"
    )
    channel = models.CharField(max_length=20, default="email")
    status = models.CharField(
        max_length=10, default=PENDING, choices=[(s, s) for s in (PENDING, SENDING, SENT, FAILED)]
    )
    attempts = models.PositiveSmallIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    claimed_at = models.DateTimeField(null=True, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    last_error = models.CharField(max_length=500, blank=True)

    class Meta:
        ordering = ["created_at", "pk"]
        indexes = [
            models.Index(
                fields=["created_at"],
                condition=Q(status__in=[PENDING, SENDING]),
                name="notification_unsent",
            )
        ]

    def __str__(self) -> str:
        return f"{self.channel} to {self.recipient} about alert {self.alert_id}: {self.status}"
