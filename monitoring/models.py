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
from django.utils.translation import gettext_lazy as _

from monitoring import texts
from monitoring.params import RuleParams, definition_words
from patients.models import Center, Infusion, Patient, PreemptiveTherapy
from patients.versioned import CenterSettingsVersion
from patients.vocabulary import Outcome

HIGH, WARNING, INFO, REMINDER = "high", "warning", "info", "reminder"
SEVERITY_CHOICES = [
    (HIGH, _("High")),
    (WARNING, _("Warning")),
    (INFO, _("Info")),
    (REMINDER, _("Reminder")),
]
SEVERITY_RANK = {HIGH: 0, WARNING: 1, REMINDER: 2, INFO: 3}

OPEN, ACKNOWLEDGED, CLOSED, WITHDRAWN = "open", "acknowledged", "closed", "withdrawn"
STATUS_CHOICES = [
    (OPEN, _("Open")),
    (ACKNOWLEDGED, _("Acknowledged")),
    (CLOSED, _("Closed")),
    (WITHDRAWN, _("Withdrawn")),
]
ACTIVE_STATUSES = (OPEN, ACKNOWLEDGED)

# Short names for flags in lists, where the severity colour alone would not say which rule.
RULE_SHORT_LABELS = {
    "early_regeneration": _("Early B-cell regeneration"),
    "late_recovery": _("Late B-cell recovery"),
    "aplasia_not_reached": _("No aplasia by day 28"),
    "bcell_count_due": _("B-cell count due"),
    "mrd_positive": _("MRD positive"),
    "car_copies_lost": _("CAR copies lost"),
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
        default=45, help_text=_("Early-regeneration window (days after infusion, inclusive).")
    )
    bcell_threshold = models.DecimalField(
        _("B-cell threshold (cells/µL)"),
        max_digits=10,
        decimal_places=3,
        default=Decimal(0),
        help_text=_("A count strictly above this is detectable. The study used 0."),
    )
    bcell_pct_threshold = models.DecimalField(
        # xgettext:no-python-format
        _("B-cell threshold (% of lymphocytes)"),
        max_digits=6,
        decimal_places=3,
        null=True,
        blank=True,
        help_text=_("Optional: also detectable above this %, e.g. 1."),
    )
    require_confirmation = models.BooleanField(
        default=False, help_text=_("A second consecutive detectable sample must confirm.")
    )
    aplasia_by_day = models.PositiveIntegerField(default=28)
    count_due_days = models.PositiveIntegerField(default=7)
    mrd_flow_threshold_pct = models.DecimalField(
        _("MRD threshold, flow (%)"), max_digits=8, decimal_places=5, default=Decimal("0.01")
    )
    mrd_ngs_threshold = models.DecimalField(
        _("MRD threshold, NGS (fraction)"),
        max_digits=10,
        decimal_places=8,
        default=Decimal("0.0001"),
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
    day = models.IntegerField(help_text=_("Day after infusion of the finding."))
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
        help_text=_("The pre-emptive therapy started in response."),
    )
    withdrawn_at = models.DateTimeField(null=True, blank=True)
    withdrawn_reason = models.CharField(max_length=500, blank=True)
    # History is not news (CLINICAL.md section 4, `monitoring.news`): a finding that arrived in
    # an import declared as history, or that the course had already answered when it arrived, is
    # recorded and analysed like any alert, but never e-mailed and kept out of the open worklist
    # and the badge. Decided when the alert is raised or re-opened; `history_reason` says why.
    historical = models.BooleanField(
        default=False,
        help_text=_(
            "History, not news (an import declared as history, or a finding the course "
            "had already answered): recorded and analysed, not e-mailed, not in the open worklist."
        ),
    )
    history_reason = models.CharField(max_length=300, blank=True)
    # When the finding's latest evidence arrived, and how many days after its collection: a late
    # result is news, and its alert and e-mail say "collected N days before it arrived".
    arrived_at = models.DateTimeField(null=True, blank=True)
    late_days = models.PositiveIntegerField(null=True, blank=True)
    # The last escalation step taken (0 none, 1 the center's other clinicians, 2 its leads):
    # claimed with a conditional UPDATE, so a step is taken once (`monitoring.escalation`).
    escalation_step = models.PositiveSmallIntegerField(default=0)

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

    @property
    def lateness(self) -> str:
        """ "collected 8 days before it arrived", or "" for a result that came in time (in the
        active language)."""
        return texts.lateness(self.late_days)

    # The texts in the reader's language. The record keeps what it was raised with (English);
    # each is shown translated when the rule's texts still give exactly the stored wording for
    # its stored parameters and facts, else as stored (an older wording, an imported alert).

    def _translated(self, stored: str, text, **placeholders) -> str:
        if text is None:
            return stored
        try:
            if texts.english(text).format(**placeholders) != stored:
                return stored
            return str(text).format(**placeholders)
        except (KeyError, IndexError, ValueError):
            return stored

    @property
    def title_display(self) -> str:
        rule = texts.rule_text(self.rule)
        return self._translated(self.title, rule and rule.title)

    @property
    def _details(self) -> dict:
        return self.details if isinstance(self.details, dict) else {}

    def _placeholders(self, *, english: bool) -> dict:
        details = self._details
        parameters = details.get("parameters")
        parameters = parameters if isinstance(parameters, dict) else {}
        values = {**parameters, **details, "day": self.day}
        if not english and details.get("method") in ("flow", "ngs"):
            values["threshold"] = texts.threshold_words(details["method"], parameters)
        return values

    @property
    def recommendation_display(self) -> str:
        stored = self._details.get("recommendation", "")
        rule = texts.rule_text(self.rule)
        if rule is None or not stored:
            return stored
        try:
            if texts.english(rule.recommendation).format(**self._placeholders(english=True)) != (
                stored
            ):
                return stored
            return str(rule.recommendation).format(**self._placeholders(english=False))
        except (KeyError, IndexError, ValueError):
            return stored

    @property
    def study_finding_display(self) -> str:
        stored = self._details.get("study_finding", "")
        rule = texts.rule_text(self.rule)
        return self._translated(stored, rule and rule.study_finding) if stored else ""

    @property
    def advisory_display(self) -> str:
        stored = self._details.get("advisory", "")
        return self._translated(stored, texts.ADVISORY) if stored else ""

    @property
    def definition_display(self) -> str:
        details = self._details
        stored, parameters = details.get("definition", ""), details.get("parameters")
        if not stored or not isinstance(parameters, dict):
            return stored
        if texts.english_of(definition_words, parameters) != stored:
            return stored
        return definition_words(parameters)

    @property
    def history_reason_display(self) -> str:
        """A reason the code stores in English, translated when the catalogue knows it."""
        return texts.stored_display(self.history_reason)

    @property
    def withdrawn_reason_display(self) -> str:
        return texts.stored_display(self.withdrawn_reason)


# Escalation steps of an unacknowledged high alert (CLINICAL.md section 4).
ESCALATION_OTHERS, ESCALATION_LEADS = 1, 2
ESCALATION_STEP_CHOICES = [
    (0, _("First notification")),
    (ESCALATION_OTHERS, _("Escalated to the center's other clinicians")),
    (ESCALATION_LEADS, _("Escalated to the center's leads")),
]
CENTER_LEADS_GROUP = "Center leads"
# The clinicians' role (patients.demo_load.roles_ensure): who may be responsible for a patient.
CLINICIANS_GROUP = "Clinicians"


class AlertEscalation(models.Model):
    """One escalation step taken for an unacknowledged high alert: shown on the alert page."""

    alert = models.ForeignKey(Alert, on_delete=models.CASCADE, related_name="escalations")
    step = models.PositiveSmallIntegerField(choices=ESCALATION_STEP_CHOICES)
    created_at = models.DateTimeField()
    recipients = models.PositiveIntegerField(help_text=_("Notifications recorded by this step."))
    note = models.CharField(max_length=300, blank=True)

    class Meta:
        ordering = ["alert", "step"]
        constraints = [
            models.UniqueConstraint(fields=["alert", "step"], name="one_escalation_per_step")
        ]

    def __str__(self) -> str:
        return f"{self.get_step_display()} ({self.recipients} recipient(s))"

    @property
    def note_display(self) -> str:
        return texts.stored_display(self.note)


class CenterAlerting(models.Model):
    """A center's alerting settings; an empty field takes the registry-wide setting."""

    center = models.OneToOneField(Center, on_delete=models.CASCADE, related_name="alerting")
    stale_after_days = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text=_(
            "A finding more than this many days older than its arrival is history "
            "(empty: ALERT_STALE_AFTER_DAYS, 60)."
        ),
    )
    escalate_after_hours = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text=_(
            "An unacknowledged high alert goes to the center's other clinicians after "
            "this many hours (empty: ALERT_ESCALATE_AFTER_HOURS, 24)."
        ),
    )
    leads_after_hours = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text=_(
            "... and to the center's leads after this many hours "
            "(empty: ALERT_ESCALATE_LEADS_AFTER_HOURS, 48)."
        ),
    )
    webhook_url = models.URLField(
        blank=True,
        help_text=_(
            "High alerts are also POSTed here (the hospital's secure messaging or paging "
            "system), signed with the secret below: study ID, title, severity and link only."
        ),
    )
    webhook_secret = models.CharField(
        max_length=200,
        blank=True,
        help_text=_("Shared secret of the webhook's HMAC-SHA256 signature."),
    )
    intake_team = models.ManyToManyField(
        settings.AUTH_USER_MODEL,
        blank=True,
        related_name="+",
        help_text=_(
            "Responsible clinicians of a patient created by a system sender (a "
            "laboratory feed) rather than by a clinician."
        ),
    )

    class Meta:
        verbose_name = _("center alerting settings")
        verbose_name_plural = _("center alerting settings")

    def __str__(self) -> str:
        return f"Alerting of {self.center}"


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

    @property
    def reason_display(self) -> str:
        """The reason in the reader's language when the code wrote it (a person's as typed)."""
        return texts.stored_display(self.reason)


PENDING, SENDING, SENT, FAILED = "pending", "sending", "sent", "failed"


class Notification(models.Model):
    """The outbox: one message to one recipient, recorded with the alert, sent after commit."""

    alert = models.ForeignKey(Alert, on_delete=models.CASCADE, related_name="notifications")
    # None for a center's webhook (its address is in the center's alerting settings).
    recipient = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, null=True, blank=True, related_name="+"
    )
    channel = models.CharField(max_length=20, default="email")
    # After a failed attempt: not tried again before this (exponential backoff).
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    escalation_step = models.PositiveSmallIntegerField(default=0, choices=ESCALATION_STEP_CHOICES)
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
        to = self.recipient or "the center's webhook"
        return f"{self.channel} to {to} about alert {self.alert_id}: {self.status}"
