"""Import bookkeeping: background jobs, idempotency keys of API senders, spreadsheet uploads.

None of these is clinical data (that goes through `patients.ingest`); they record who sent what,
what the first answer was, and where a long import stands.
"""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from carttrack.background import BackgroundRun, RunStatus
from imports.problems import problem_text
from patients.units import ANALYTE_CHOICES as _ANALYTE_CHOICES
from patients.units import UNIT_CHOICES as _UNIT_CHOICES

QUEUED, RUNNING, DONE, FAILED = RunStatus  # the codes of every background run
# The statuses of every background run, as the import pages name them.
JOB_STATUS_CHOICES = [
    (QUEUED, _("Queued")),
    (RUNNING, _("Running")),
    (DONE, _("Done")),
    (FAILED, _("Failed (nothing saved)")),
]


class ImportJob(BackgroundRun):
    """A batch imported in the background (a large API batch, a confirmed spreadsheet):
    claimed, stamped and swept as every background run (``carttrack.background``). A running
    job whose heartbeat stopped lost its worker (nothing was saved, the import is one
    transaction), so the sweep queues it again, or fails it once it has been tried
    `IMPORT_JOB_RETRIES` more times."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    kind = models.CharField(max_length=20)  # "lab_batch", "spreadsheet", "fhir"
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    # The background run's status, under the import pages' own labels.
    status = models.CharField(max_length=10, choices=JOB_STATUS_CHOICES, default=QUEUED)
    # The request as received (API) or a pointer to the stored upload; read by the task.
    payload = models.JSONField(default=dict)
    total = models.PositiveIntegerField(default=0)
    # The answer once done: counts, ids, or every problem by its place (nothing saved).
    result = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    # When the job's message was last sent to the workers: a job still queued long after it
    # may have lost its message (Redis down at the time, or restarted without persistence),
    # so the sweep sends it again; a duplicate message finds the job claimed and does nothing.
    enqueued_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [  # the sweep's questions, every minute: which running jobs went silent
            # (BackgroundRun.silent_runs), which queued ones were never taken (jobs.py
            # import_jobs_resend)?
            models.Index(
                fields=["heartbeat_at"], condition=Q(status=RUNNING), name="importjob_running"
            ),
            models.Index(
                fields=["enqueued_at"], condition=Q(status=QUEUED), name="importjob_queued"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.kind} job {self.id} ({self.status})"


class IdempotencyKey(models.Model):
    """A sender's Idempotency-Key with the hash of its request and the first answer given.

    Stored in the transaction of a successful import only, so a re-sent batch gets the first
    answer (never a duplicate error) and a refused batch can be corrected and sent again."""

    sender = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    key = models.CharField(max_length=255)
    request_hash = models.CharField(max_length=64)
    status_code = models.PositiveSmallIntegerField()
    response = models.JSONField()
    # Keys older than IDEMPOTENCY_KEY_DAYS are treated as new and purged nightly.
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["sender", "key"], name="idempotency_key_per_sender")
        ]

    def __str__(self) -> str:
        return f"{self.sender_id}:{self.key}"


PREVIEWED, IMPORTING, IMPORTED, REFUSED = "previewed", "importing", "imported", "refused"
CHECKING = "checking"
UPLOAD_STATUS_CHOICES = [
    (CHECKING, _("Being read and checked")),
    (PREVIEWED, _("Checked, waiting for confirmation")),
    (IMPORTING, _("Importing")),
    (IMPORTED, _("Imported")),
    (REFUSED, _("Refused (nothing saved)")),
]


class SpreadsheetUpload(models.Model):
    """An uploaded spreadsheet, parsed and checked, kept between the preview and the confirm."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    file_name = models.CharField(max_length=255)
    # SHA-256 of the file's bytes: the same file again is reported as already imported.
    file_hash = models.CharField(max_length=64, db_index=True)
    status = models.CharField(max_length=10, choices=UPLOAD_STATUS_CHOICES, default=PREVIEWED)
    # The file as uploaded, until the background job has read it (then emptied): no web
    # request parses a file.
    content = models.BinaryField(default=b"", editable=False)
    csv_sheet = models.CharField(max_length=20, blank=True)  # what a CSV file holds
    rows = models.JSONField(default=dict)  # {sheet: [{"_row": n, column: text}, ...]} as read
    preview = models.JSONField(default=dict)  # counts to create and every problem
    job = models.ForeignKey(ImportJob, on_delete=models.SET_NULL, null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.file_name} ({self.get_status_display()})"


# --- Held results: what a feed sent that could not be placed --------------------------------

HELD, HELD_IMPORTED, HELD_DISMISSED = "held", "imported", "dismissed"
HELD_STATE_CHOICES = [
    (HELD, _("Held")),
    (HELD_IMPORTED, _("Imported")),
    (HELD_DISMISSED, _("Dismissed")),
]
UNKNOWN_PATIENT, UNMAPPED_CODE, UNMAPPED_UNIT, UNREADABLE, REFUSED_BY_CHECKS = (
    "unknown_patient",
    "unmapped_code",
    "unmapped_unit",
    "unreadable",
    "refused",
)
HELD_REASON_CHOICES = [
    (UNKNOWN_PATIENT, _("Unknown patient")),
    (UNMAPPED_CODE, _("Code not mapped")),
    (UNMAPPED_UNIT, _("Unit not mapped")),
    (UNREADABLE, _("Value or time not readable")),
    (REFUSED_BY_CHECKS, _("Refused by the checks on retry")),
]
SOURCE_CHOICES = [
    ("hl7", _("HL7 v2 (MLLP)")),
    ("fhir", "FHIR"),
    ("lab-api", _("Lab API")),
    ("spreadsheet", _("Spreadsheet")),
]


class HeldResult(models.Model):
    """One result a feed sent that could not be placed (unknown patient, unmapped code or unit):
    kept, as sent, in its center's queue until it is imported (the patient registered, the code
    mapped: `imports.held.held_results_retry`) or dismissed by a person with a reason. Nothing a
    laboratory sends is silently dropped."""

    center = models.ForeignKey(
        "patients.Center", on_delete=models.PROTECT, related_name="held_results"
    )
    source = models.CharField(max_length=20, choices=SOURCE_CHOICES)
    sender = models.CharField(
        max_length=200, help_text=_("Who sent it (HL7 MSH-3/MSH-4, account).")
    )
    received_at = models.DateTimeField(auto_now_add=True)
    # The one result as sent: an HL7 OBX (with its PID/OBR context), a FHIR Observation, JSON.
    raw = models.TextField()
    # What it is, as sent (text, never interpreted beyond what the retry needs).
    identifier = models.CharField(_("patient identifier"), max_length=200, blank=True)
    # "study_id" or "mrn": what the identifier is matched against on retry.
    identifier_kind = models.CharField(max_length=10, default="study_id")
    code_system = models.CharField(max_length=200, blank=True)
    code = models.CharField(max_length=200, blank=True)
    code_display = models.CharField(max_length=200, blank=True)
    value = models.CharField(max_length=100, blank=True)
    unit = models.CharField(max_length=100, blank=True)
    collected_at_text = models.CharField(_("collected at (as sent)"), max_length=100, blank=True)
    reason = models.CharField(max_length=20, choices=HELD_REASON_CHOICES)
    # English: what the laboratory system is told (HL7 ERR), and the queue's text for a row kept
    # before reasons had codes or for the checks' messages (REFUSED_BY_CHECKS).
    reason_text = models.TextField()
    # The reason's code and parameters ({"code", "params", "message"}: imports.problems), put
    # into words in the reader's language on the queue page: `reason_shown`.
    reason_detail = models.JSONField(default=dict, blank=True)
    state = models.CharField(max_length=10, choices=HELD_STATE_CHOICES, default=HELD)
    resolved_at = models.DateTimeField(null=True, blank=True)
    dismissed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
    )
    dismissal_reason = models.TextField(blank=True)
    imported_result = models.ForeignKey(
        "patients.LabResult",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    # The HL7 message it came in (the raw message is kept there), if any.
    hl7_message = models.ForeignKey(
        "imports.HL7Message",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="held_results",
    )
    retried_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-received_at", "-pk"]
        indexes = [
            models.Index(
                fields=["center", "received_at"], condition=Q(state=HELD), name="heldresult_queue"
            )
        ]
        constraints = [
            models.CheckConstraint(
                condition=~Q(state=HELD_DISMISSED) | ~Q(dismissal_reason=""),
                name="heldresult_dismissed_with_reason",
                violation_error_message=_("Say why the result is dismissed."),
            )
        ]

    def __str__(self) -> str:
        return f"{self.code or '?'} for {self.identifier or '?'} from {self.sender} ({self.state})"

    @property
    def reason_shown(self) -> str:
        """Why it is held, in the active language (the stored English text for older rows)."""
        if self.reason_detail.get("code"):
            return problem_text(self.reason_detail)
        return self.reason_text


class CodeMapping(models.Model):
    """A center's own result code (LOINC or a laboratory's local code) and what it is. Looked up
    before the shipped LOINC entries (imports/fhir_mapping.json). Saving one retries the center's
    held results."""

    center = models.ForeignKey("patients.Center", on_delete=models.CASCADE, related_name="+")
    # Empty: any coding system; else as sent (HL7 OBX-3.3 "LN", "L", "99LAB"; FHIR system URL).
    system = models.CharField(max_length=200, blank=True)
    code = models.CharField(max_length=100)
    display = models.CharField(max_length=200, blank=True)
    analyte = models.CharField(max_length=20, choices=_ANALYTE_CHOICES)

    class Meta:
        ordering = ["center", "code"]
        constraints = [
            models.UniqueConstraint(
                fields=["center", "system", "code"], name="codemapping_one_per_code"
            )
        ]

    def __str__(self) -> str:
        return f"{self.center}: {self.system or '*'}|{self.code} -> {self.analyte}"


class UnitAlias(models.Model):
    """A center's laboratory spelling of a unit UCUM parsing does not read ("G/l", "Zellen/ul"),
    and the product unit it means."""

    center = models.ForeignKey("patients.Center", on_delete=models.CASCADE, related_name="+")
    text = models.CharField(max_length=50, help_text=_("As the laboratory writes it."))
    unit = models.CharField(max_length=20, choices=_UNIT_CHOICES)

    class Meta:
        ordering = ["center", "text"]
        constraints = [
            models.UniqueConstraint(fields=["center", "text"], name="unitalias_one_per_text")
        ]

    def __str__(self) -> str:
        return f"{self.center}: {self.text} = {self.unit}"


# --- HL7 v2 feeds -----------------------------------------------------------------------------

STUDY_ID_KIND, MRN_KIND = "study_id", "mrn"
IDENTIFIER_KIND_CHOICES = [(STUDY_ID_KIND, _("Study ID")), (MRN_KIND, _("MRN"))]


class HL7Feed(models.Model):
    """A laboratory that sends HL7 v2 results: its sending application and facility (MSH-3,
    MSH-4), the center they are for, and which PID-3 identifier names the patient. PID-3 is
    matched only through this identifier type (CX.5) and/or assigning authority (CX.4): a
    message whose PID-3 has no such identifier is held, never matched on another identifier."""

    center = models.ForeignKey("patients.Center", on_delete=models.PROTECT, related_name="+")
    sending_application = models.CharField(
        _("sending application (MSH-3)"), max_length=180, help_text=_("Its namespace ID, e.g. LAB.")
    )
    sending_facility = models.CharField(
        _("sending facility (MSH-4)"), max_length=180, help_text=_("Its namespace ID, e.g. HOSP.")
    )
    identifier_type = models.CharField(
        _("PID-3 identifier type (CX.5)"), max_length=10, blank=True, help_text=_("e.g. MR, PI.")
    )
    assigning_authority = models.CharField(
        _("PID-3 assigning authority (CX.4)"), max_length=180, blank=True, help_text=_("e.g. HOSP.")
    )
    identifier_is = models.CharField(
        _("the identifier is the"), max_length=10, choices=IDENTIFIER_KIND_CHOICES, default=MRN_KIND
    )
    # Results from this feed are a center's history (back-loaded archive) rather than news; the
    # alert semantics of the flag are wired by monitoring (CLINICAL.md section 4).
    history = models.BooleanField(
        _("the feed sends history"), default=False, help_text=_("Back-loaded results, not news.")
    )
    team = models.ForeignKey(
        "auth.Group",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        help_text=_("Who is told about this feed's held results."),
    )
    active = models.BooleanField(default=True)

    class Meta:
        verbose_name = _("HL7 feed")
        ordering = ["center", "sending_application", "sending_facility"]
        constraints = [
            models.UniqueConstraint(
                fields=["sending_application", "sending_facility"], name="hl7feed_one_per_sender"
            ),
            models.CheckConstraint(
                condition=~Q(identifier_type="") | ~Q(assigning_authority=""),
                name="hl7feed_identifier_named",
                violation_error_message=_(
                    "Name the PID-3 identifier type or assigning authority that identifies the "
                    "patient."
                ),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.sending_application}|{self.sending_facility} -> {self.center}"


RECEIVED, PROCESSED, REJECTED = "received", "processed", "rejected"
HL7_STATE_CHOICES = [
    (RECEIVED, _("Received, not yet processed")),
    (PROCESSED, _("Processed")),
    (REJECTED, _("Rejected (AR)")),
]


class HL7Message(models.Model):
    """An HL7 v2 message as received, stored (and committed) before its ACK is sent. The sender's
    control ID (MSH-10) with MSH-3/MSH-4 is unique: a message sent again after a lost ACK gets
    the stored ACK and imports nothing twice."""

    sending_application = models.CharField(max_length=180, blank=True)
    sending_facility = models.CharField(max_length=180, blank=True)
    control_id = models.CharField(_("control ID (MSH-10)"), max_length=200, blank=True)
    message_type = models.CharField(max_length=30, blank=True)
    version = models.CharField(max_length=20, blank=True)
    raw = models.TextField()
    received_at = models.DateTimeField(auto_now_add=True)
    feed = models.ForeignKey(HL7Feed, on_delete=models.SET_NULL, null=True, blank=True)
    state = models.CharField(max_length=10, choices=HL7_STATE_CHOICES, default=RECEIVED)
    ack_code = models.CharField(max_length=2, blank=True)  # AA, AE, AR
    ack = models.TextField(blank=True)  # the ACK sent, sent again for a repeat
    notes = models.JSONField(default=list, blank=True)  # what was skipped, held, imported
    processed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = _("HL7 message")
        ordering = ["-received_at", "-pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["sending_application", "sending_facility", "control_id"],
                condition=~Q(control_id=""),
                name="hl7message_once_per_control_id",
            )
        ]

    def __str__(self) -> str:
        return f"{self.sending_application}|{self.sending_facility} {self.control_id}"


class HL7Listener(models.Model):
    """A running `hl7_listen` process: stamped every HL7_HEARTBEAT_SECONDS while it accepts
    connections, so a health check can tell it is up (heartbeat_at recent) without connecting."""

    address = models.CharField(max_length=100, unique=True)  # host:port as bound
    pid = models.PositiveIntegerField()
    started_at = models.DateTimeField()
    heartbeat_at = models.DateTimeField()
    messages = models.PositiveIntegerField(default=0)  # acknowledged since it started

    class Meta:
        verbose_name = _("HL7 listener")

    def __str__(self) -> str:
        return f"{self.address} (pid {self.pid})"


class ObservationLink(models.Model):
    """The FHIR Observation identifier (system, value) a stored lab result was imported under,
    so a later `amended`/`corrected` Observation replaces it and `entered-in-error` withdraws
    it. Deleted with its result (a withdrawn result's history keeps the values)."""

    system = models.CharField(max_length=255)
    value = models.CharField(max_length=255)
    lab_result = models.ForeignKey(
        "patients.LabResult", on_delete=models.CASCADE, related_name="observation_links"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["system", "value"], name="observation_link_unique")
        ]

    def __str__(self) -> str:
        return f"{self.system}|{self.value}"
