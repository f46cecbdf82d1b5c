"""Which format builds a background job's batch, and what happens when it ends."""

from __future__ import annotations

from imports.models import ImportJob
from patients.ingest.records import Batch


def batch_for_job(job: ImportJob) -> tuple[Batch | None, dict]:
    """The job's records, or the problems found while reading them ({place: [message]})."""
    if job.kind == "lab_batch":
        from imports.formats.lab_json import LabBatchSerializer, flatten_errors, lab_batch_records

        parsed = LabBatchSerializer(data=job.payload)
        if not parsed.is_valid():
            return None, flatten_errors(parsed.errors)
        return lab_batch_records(parsed.validated_data["samples"]), {}
    if job.kind == "spreadsheet":
        from imports.uploads import upload_batch

        return upload_batch(job.payload["upload_id"])
    raise ValueError(f"unknown job kind {job.kind!r}")


def job_finished(job: ImportJob) -> None:
    if job.kind == "spreadsheet_preview":
        if job.status == "failed":
            from imports.uploads import upload_preview_failed

            upload_preview_failed(job)
        return
    if job.kind == "spreadsheet":
        from imports.uploads import upload_finished

        upload_finished(job)
