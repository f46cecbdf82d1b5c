"""Import bookkeeping: background jobs, idempotency keys of API senders, spreadsheet uploads.

None of these is clinical data (that goes through `patients.ingest`); they record who sent what,
what the first answer was, and where a long import stands.
"""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q

QUEUED, RUNNING, DONE, FAILED = "queued", "running", "done", "failed"
JOB_STATUS_CHOICES = [
    (QUEUED, "Queued"),
    (RUNNING, "Running"),
    (DONE, "Done"),
    (FAILED, "Failed (nothing saved)"),
]


class ImportJob(models.Model):
    """A batch imported in the background (a large API batch, a confirmed spreadsheet)."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    kind = models.CharField(max_length=20)  # "lab_batch", "spreadsheet", "fhir"
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    status = models.CharField(max_length=10, choices=JOB_STATUS_CHOICES, default=QUEUED)
    # The request as received (API) or a pointer to the stored upload; read by the task.
    payload = models.JSONField(default=dict)
    total = models.PositiveIntegerField(default=0)
    # The answer once done: counts, ids, or every problem by its place (nothing saved).
    result = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    # Stamped every few seconds while a worker imports: a running job whose stamp stopped lost
    # its worker (nothing was saved, the import is one transaction), so the sweep queues it
    # again, or fails it once it has been tried `IMPORT_JOB_RETRIES` more times.
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)  # workers that claimed it so far
    # When the job's message was last sent to the workers: a job still queued long after it
    # may have lost its message (Redis down at the time, or restarted without persistence),
    # so the sweep sends it again; a duplicate message finds the job claimed and does nothing.
    enqueued_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [  # the sweep's questions, every minute: which running jobs went silent,
            # which queued ones were never taken?
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
UPLOAD_STATUS_CHOICES = [
    (PREVIEWED, "Checked, waiting for confirmation"),
    (IMPORTING, "Importing"),
    (IMPORTED, "Imported"),
    (REFUSED, "Refused (nothing saved)"),
]


class SpreadsheetUpload(models.Model):
    """An uploaded spreadsheet, parsed and checked, kept between the preview and the confirm."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    file_name = models.CharField(max_length=255)
    # SHA-256 of the file's bytes: the same file again is reported as already imported.
    file_hash = models.CharField(max_length=64, db_index=True)
    status = models.CharField(max_length=10, choices=UPLOAD_STATUS_CHOICES, default=PREVIEWED)
    rows = models.JSONField(default=dict)  # {sheet: [{column: text}, ...]} as read
    preview = models.JSONField(default=dict)  # counts to create and every problem
    job = models.ForeignKey(ImportJob, on_delete=models.SET_NULL, null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.file_name} ({self.get_status_display()})"


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
