"""Dashboard snapshots: every analysis of one cohort, computed together and stored at once.

A snapshot is immutable and is inserted in one statement only after every analysis succeeded, so
a crash mid-way leaves the previous snapshot in place. A refresh run records the progress of one
computation, for the "Refresh now" button.
"""

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _

from carttrack.background import BackgroundRun, RunStatus


class DashboardSnapshot(models.Model):
    cohort_key = models.CharField(_("cohort key"), max_length=300, db_index=True)
    cohort_label = models.CharField(_("cohort"), max_length=300)
    computed_at = models.DateTimeField(_("computed at"), auto_now_add=True)
    # The data version it was computed from (latest change in the audited clinical data).
    data_version = models.CharField(_("data version"), max_length=64)
    n_patients = models.PositiveIntegerField(_("patients"))
    report = models.JSONField(_("report"))
    # Counts of 1 to SMALL_CELL_MIN - 1 patients: a pooled cohort's figures hide them; a
    # one-center cohort's `figures` show them and are served only to that center's own users,
    # everyone else gets `figures_suppressed` (None for a pooled cohort, whose figures already
    # are; also None for a center's snapshot computed before this field, shown to no one else).
    figures = models.JSONField(_("figures"))
    figures_suppressed = models.JSONField(_("figures, small cells hidden"), null=True, blank=True)
    options = models.JSONField(_("options"), default=dict)
    # The analysis table exactly as the numbers were computed from it (pseudonymous IDs only),
    # so a statistician can recompute every headline figure from the export.
    table_csv = models.TextField(_("analysis table (CSV)"), blank=True)
    # Patients left out because their derived row breaks the dataset's schema (one dict per
    # problem: study_id, center, column, problem), so one bad row never takes the dashboard
    # down and the row is named where it can be fixed.
    excluded = models.JSONField(_("patients left out"), default=list, blank=True)
    duration_ms = models.PositiveIntegerField(_("duration (ms)"))

    class Meta:
        ordering = ["-computed_at", "-pk"]
        get_latest_by = ["computed_at", "pk"]
        verbose_name = _("dashboard snapshot")
        verbose_name_plural = _("dashboard snapshots")

    def __str__(self) -> str:
        return f"{self.cohort_label} at {self.computed_at:%Y-%m-%d %H:%M}"


QUEUED, RUNNING, DONE, FAILED = RunStatus  # the codes of every background run
#: The statuses as people read them (the stored value and the status JSON keep the codes).
STATUS_LABELS = dict(RunStatus.choices)


class RefreshRun(BackgroundRun):
    """One computation of a cohort's snapshot, for the "Refresh now" button and the nightly
    refresh: claimed, stamped and swept as every background run (``carttrack.background``).
    A run whose worker stopped is failed by the sweep, so the page never shows a run that
    nothing is running; it is never run again ("Refresh now" starts a new one)."""

    ASKED_AT = "requested_at"

    cohort_key = models.CharField(_("cohort key"), max_length=300)
    options = models.JSONField(_("options"), default=dict)
    # A message (analytics.services.STEPS), stored in English and shown translated.
    step = models.CharField(_("step"), max_length=100, blank=True)
    progress = models.PositiveSmallIntegerField(_("progress (%)"), default=0)  # percent
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("requested by"),
    )
    requested_at = models.DateTimeField(_("requested at"), auto_now_add=True)
    worker = models.CharField(_("worker"), max_length=200, blank=True)
    snapshot = models.ForeignKey(
        DashboardSnapshot,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("snapshot"),
    )
    error = models.TextField(_("error"), blank=True)

    class Meta:
        ordering = ["-requested_at"]
        verbose_name = _("refresh run")
        verbose_name_plural = _("refresh runs")

    def __str__(self) -> str:
        return f"refresh {self.pk} of {self.cohort_key}: {self.status}"


class PatientDerived(models.Model):
    """One patient's analysis dataset row (`analytics.dataset.patient_row`), kept current in the
    transaction that changes the patient's records (`analytics.derived`), so that a snapshot reads
    one stored row per patient instead of rebuilding every timeline.

    ``row`` None: the patient has no infusion (no row in the analysis table). ``inputs_version``
    fingerprints what the row depends on besides the patient's records (the center's code, time
    zone and alert parameters in force, the row's logic): a row whose fingerprint differs from
    the current one is stale and is rebuilt when read. ``manage.py derived_facts_verify``
    rebuilds every row from the raw records and reports any difference.
    """

    patient = models.OneToOneField(
        "patients.Patient",
        on_delete=models.CASCADE,
        primary_key=True,
        related_name="derived",
        verbose_name=_("patient"),
    )
    row = models.JSONField(_("analysis row"), null=True, blank=True)
    inputs_version = models.CharField(_("inputs version"), max_length=64)
    updated_at = models.DateTimeField(_("updated at"))

    class Meta:
        verbose_name = _("derived patient facts")
        verbose_name_plural = _("derived patient facts")

    def __str__(self) -> str:
        return f"derived facts of patient {self.patient_id}"
